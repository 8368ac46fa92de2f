// Chorus dashboard: live counts. The node's event stream updates every count and bar of a
// petition shown on the page, without a reload: a petition's page follows that petition,
// any other page what the user takes part in. The browser's EventSource reconnects by
// itself when the node restarts.
(function () {
  "use strict";
  if (!window.EventSource) {
    return;
  }
  // A producer's page follows the producer's topic (below): one stream per page, since a
  // browser opens only a few connections to one host.
  if (document.querySelector("#inbox-items[data-producer], .product-page[data-producer], #products[data-producer]")) {
    return;
  }
  var one = document.querySelector("article[data-petition]");
  var stream = new EventSource(
    one
      ? "/events?petition=" + encodeURIComponent(one.getAttribute("data-petition"))
      : "/events?mine=true"
  );
  function update(e) {
    var d;
    try {
      d = JSON.parse(e.data);
    } catch (_) {
      return;
    }
    var t = d && d.tally;
    if (!t || !t.id) {
      return;
    }
    var items = document.querySelectorAll('[data-petition="' + t.id + '"]');
    Array.prototype.forEach.call(items, function (el) {
      var count = el.querySelector(".live-count");
      if (count) {
        count.textContent = String(t.endorsers);
      }
      var pledged = el.querySelector(".live-pledged");
      if (pledged && t.pledged_total) {
        pledged.textContent = t.pledged_total;
      }
      var money = el.querySelector("progress.pledged");
      if (money && t.pledged_total) {
        money.value = Math.min(parseFloat(t.pledged_total) || 0, Number(money.max));
      }
      if (t.funded) {
        var mark = el.querySelector(".funded-mark");
        if (mark) {
          mark.hidden = false;
        }
        var sum = el.querySelector(".pledged-count");
        if (sum) {
          sum.classList.add("reached");
        }
      }
      var answer = el.querySelector("#answer-section");
      if (answer && t.response && answer.getAttribute("data-response") !== t.response.id) {
        answer.setAttribute("data-response", t.response.id);
        // The status in the page's language (the words are on the section), and the text.
        var word = t.response.status;
        (answer.getAttribute("data-statuses") || "").split("|").forEach(function (pair) {
          var kv = pair.split("=");
          if (kv[0] === t.response.status && kv[1]) {
            word = kv[1];
          }
        });
        answer.querySelector(".answer-status").textContent = word;
        answer.querySelector(".answer-text").textContent = t.response.text
          ? " — " + t.response.text
          : "";
        answer.hidden = false;
      }
      var bar = el.querySelector("progress:not(.pledged)");
      if (bar) {
        bar.value = Math.min(t.endorsers, Number(bar.max));
        bar.textContent = t.endorsers + " / " + bar.max;
      }
      if (t.reached) {
        var detail = el.querySelector(".count");
        if (detail) {
          detail.classList.add("reached");
        }
      }
    });
  }
  ["tally", "threshold", "funded", "ended"].forEach(function (kind) {
    stream.addEventListener(kind, update);
  });

})();

// Producer pages: the inbox, the products overview and a product page follow the
// producer's feedback topic (`/events?producer=KEY`). What arrives is added at the top as
// the node renders it (fetched from `/inbox/items/ID` or the product's `/reviews/ID`, so
// every word stays in the node's string tables), counts and the rating chart move. The
// browser's EventSource reconnects by itself and resumes after the last event seen
// (Last-Event-ID); an item already shown is not added twice.
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch) {
    return;
  }
  var inbox = document.getElementById("inbox-items");
  var product = document.querySelector(".product-page[data-producer]");
  var products = document.getElementById("products");
  var root = inbox || product || products;
  if (!root) {
    return;
  }
  var producer = root.getAttribute("data-producer");
  if (!producer) {
    return;
  }
  // Only the first page of a list takes new items at its top.
  var firstPage = location.search.indexOf("before=") < 0;
  var pending = {};
  var stream = new EventSource("/events?producer=" + encodeURIComponent(producer));

  function data(e) {
    try {
      return JSON.parse(e.data);
    } catch (_) {
      return null;
    }
  }

  // The node's markup of one item, as an element.
  function fetchItem(url, done) {
    if (pending[url]) {
      return;
    }
    pending[url] = true;
    fetch(url, { credentials: "same-origin" })
      .then(function (r) {
        // A session that ended sends the welcome page instead: nothing to add.
        return r.ok && !r.redirected ? r.text() : null;
      })
      .then(function (html) {
        delete pending[url];
        if (!html) {
          return;
        }
        var t = document.createElement("template");
        t.innerHTML = html.trim();
        if (t.content.firstElementChild) {
          done(t.content.firstElementChild);
        }
      })
      .catch(function () {
        delete pending[url];
      });
  }

  function hide(id) {
    var el = document.getElementById(id);
    if (el) {
      el.hidden = true;
    }
  }

  function addToInbox(el) {
    if (document.getElementById(el.id)) {
      return;
    }
    inbox.insertBefore(el, inbox.firstChild);
    hide("inbox-empty");
    if (el.classList.contains("unread")) {
      var n = document.getElementById("inbox-unread");
      if (n) {
        n.textContent = String((parseInt(n.textContent, 10) || 0) + 1);
      }
    }
    // What is on the page now is what "mark all as read" marks.
    var upto = document.getElementById("mark-read-upto");
    var at = Number(el.getAttribute("data-at"));
    if (upto && at > Number(upto.value)) {
      upto.value = String(at);
    }
  }

  function mean(v) {
    var lang = document.documentElement.lang || "en";
    return Number(v).toLocaleString(lang, {
      minimumFractionDigits: 1,
      maximumFractionDigits: 1,
    });
  }

  function setText(scope, selector, text) {
    var el = scope.querySelector(selector);
    if (el) {
      el.textContent = text;
    }
  }

  function moveChart(r) {
    var svg = document.getElementById("rating-chart");
    if (!svg || !r.histogram) {
      return;
    }
    var full = Number(svg.getAttribute("data-bar-max")) || 0;
    var max = Math.max.apply(null, r.histogram);
    for (var star = 1; star <= 5; star++) {
      var n = r.histogram[star - 1] || 0;
      var len = max > 0 ? (full * n) / max : 0;
      var bar = svg.querySelector('rect.bar[data-star="' + star + '"]');
      var label = svg.querySelector('text.bar-count[data-star="' + star + '"]');
      if (bar) {
        var x = Number(bar.getAttribute("x"));
        bar.setAttribute("width", len.toFixed(1));
        if (label) {
          label.setAttribute("x", (x + len + 6).toFixed(1));
          label.textContent = String(n);
        }
      }
    }
  }

  stream.addEventListener("record", function (e) {
    var d = data(e);
    var rec = d && d.record;
    if (!rec || !rec.id || !firstPage) {
      return;
    }
    if (inbox && (rec.kind === "review" || rec.kind === "petition")) {
      if (!document.getElementById("item-" + rec.id)) {
        fetchItem("/inbox/items/" + rec.id, addToInbox);
      }
    }
    if (product && rec.kind === "review" && rec.body && rec.body.product &&
        rec.body.product.code === product.getAttribute("data-code")) {
      var list = document.getElementById("reviews");
      if (list && !document.getElementById("review-" + rec.id)) {
        fetchItem(location.pathname + "/reviews/" + rec.id, function (el) {
          if (!document.getElementById(el.id)) {
            list.insertBefore(el, list.firstChild);
            hide("reviews-empty");
          }
        });
      }
    }
  });

  stream.addEventListener("threshold", function (e) {
    var d = data(e);
    var t = d && d.tally;
    if (inbox && firstPage && t && t.id && !document.getElementById("crossing-" + t.id)) {
      fetchItem("/inbox/items/" + t.id + "?crossing=true", addToInbox);
    }
  });

  ["tally", "threshold"].forEach(function (kind) {
    stream.addEventListener(kind, function (e) {
      var d = data(e);
      var t = d && d.tally;
      if (!t || !t.id) {
        return;
      }
      var items = root.querySelectorAll('[data-petition="' + t.id + '"]');
      Array.prototype.forEach.call(items, function (el) {
        setText(el, ".live-count", String(t.endorsers));
        if (t.reached) {
          var c = el.querySelector(".count");
          if (c) {
            c.classList.add("reached");
          }
        }
      });
    });
  });

  stream.addEventListener("rating", function (e) {
    var r = data(e);
    if (!r || r.producer !== producer) {
      return;
    }
    var scope = null;
    if (product && r.product === product.getAttribute("data-code")) {
      scope = product;
      moveChart(r);
    } else if (products) {
      var rows = products.querySelectorAll("li[data-product]");
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute("data-product") === r.product) {
          scope = rows[i];
        }
      }
    }
    if (scope) {
      setText(scope, ".live-rating-count", String(r.count));
      var word = scope.querySelector(".live-rating-word");
      if (word) {
        word.textContent = word.getAttribute(r.count === 1 ? "data-one" : "data-many");
      }
      setText(scope, ".live-rating-mean", mean(r.mean));
    }
  });

  // The producer's answer to a review on a product page: the review again, answered.
  stream.addEventListener("response", function (e) {
    var d = data(e);
    if (!product || !d || !d.target) {
      return;
    }
    var shown = document.getElementById("review-" + d.target);
    if (shown) {
      fetchItem(location.pathname + "/reviews/" + d.target, function (el) {
        if (shown.parentNode) {
          shown.parentNode.replaceChild(el, shown);
        }
      });
    }
  });
})();

// Watchdog: while an audit runs, its page reloads itself every few seconds
// (`data-refresh` holds the seconds) until the report is there.
(function () {
  "use strict";
  var running = document.querySelector("[data-refresh]");
  if (!running) {
    return;
  }
  var seconds = Number(running.getAttribute("data-refresh")) || 3;
  window.setTimeout(function () {
    window.location.reload();
  }, seconds * 1000);
})();
