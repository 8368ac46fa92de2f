// Chorus dashboard: live counts. The node's event stream updates every count and bar of a
// petition shown on the page, without a reload: a petition's page follows that petition,
// any other page what the user takes part in. The browser's EventSource reconnects by
// itself when the node restarts.
(function () {
  "use strict";
  if (!window.EventSource) {
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
