//! Every string the dashboard shows, one table per language. The language is chosen from the
//! browser's `Accept-Language` (English unless French comes first).

/// The dashboard's words in one language.
pub(crate) struct Strings {
    /// The `lang` attribute of the page.
    pub(crate) lang: &'static str,
    pub(crate) title: &'static str,
    pub(crate) skip: &'static str,
    pub(crate) nav_home: &'static str,
    pub(crate) log_out: &'static str,
    pub(crate) peers: &'static str,
    pub(crate) records: &'static str,
    pub(crate) free: &'static str,
    pub(crate) sync_ready: &'static str,
    pub(crate) sync_rebuilding: &'static str,
    pub(crate) storage_failed: &'static str,
    pub(crate) welcome_title: &'static str,
    pub(crate) welcome_text: &'static str,
    pub(crate) welcome_how: &'static str,
    pub(crate) link_used_title: &'static str,
    pub(crate) link_used_text: &'static str,
    pub(crate) refused_title: &'static str,
    pub(crate) refused_host: &'static str,
    pub(crate) refused_origin: &'static str,
    pub(crate) refused_csrf: &'static str,
    pub(crate) not_found_title: &'static str,
    pub(crate) not_found_text: &'static str,
    pub(crate) home_title: &'static str,
    pub(crate) you_are: &'static str,
    pub(crate) no_profile: &'static str,
    pub(crate) my_petitions: &'static str,
    pub(crate) my_endorsements: &'static str,
    pub(crate) my_groups: &'static str,
    pub(crate) my_reviews: &'static str,
    pub(crate) none_yet: &'static str,
    pub(crate) endorsers: &'static str,
    pub(crate) reached: &'static str,
    pub(crate) open: &'static str,
    pub(crate) closed: &'static str,
    pub(crate) withdrawn: &'static str,
    pub(crate) stars: &'static str,
    pub(crate) proposal: &'static str,
    pub(crate) campaign: &'static str,
    pub(crate) aimed_at: &'static str,
    pub(crate) group: &'static str,
    pub(crate) ends_in: &'static str,
    pub(crate) days: &'static str,
    pub(crate) progress: &'static str,
    pub(crate) pledged: &'static str,
    pub(crate) funded: &'static str,
    pub(crate) answer: &'static str,
    pub(crate) act: &'static str,
    pub(crate) you_endorse: &'static str,
    pub(crate) endorse: &'static str,
    pub(crate) retract: &'static str,
    pub(crate) pledge_label: &'static str,
    pub(crate) not_done: &'static str,
    pub(crate) go_back: &'static str,
    pub(crate) founded_by: &'static str,
    pub(crate) members: &'static str,
    pub(crate) members_title: &'static str,
    pub(crate) approval: &'static str,
    pub(crate) open_group: &'static str,
    pub(crate) you_here: &'static str,
    pub(crate) you_founder: &'static str,
    pub(crate) you_member: &'static str,
    pub(crate) you_pending: &'static str,
    pub(crate) join: &'static str,
    pub(crate) ask_to_join: &'static str,
    pub(crate) pending_requests: &'static str,
    pub(crate) admit: &'static str,
    pub(crate) search: &'static str,
    pub(crate) search_hint: &'static str,
    pub(crate) results_for: &'static str,
    pub(crate) no_results: &'static str,
    pub(crate) peers_asked: &'static str,
    pub(crate) kinds: [(&'static str, &'static str); 8],
    pub(crate) nav_browse: &'static str,
    pub(crate) nav_write: &'static str,
    pub(crate) nav_inbox: &'static str,
    pub(crate) nav_products: &'static str,
    pub(crate) nav_watchdog: &'static str,
    pub(crate) nav_node: &'static str,
    // --- Producer pages (inbox, products, product page) ---
    /// Response statuses in words: (the protocol's word, the language's).
    pub(crate) status_words: [(&'static str, &'static str); 5],
    /// The decimal separator of means.
    pub(crate) decimal_sep: &'static str,
    pub(crate) reviews_count: &'static str,
    /// One review (the count's word when it is 1).
    pub(crate) review_one: &'static str,
    pub(crate) mean_label: &'static str,
    pub(crate) out_of_5: &'static str,
    pub(crate) product_by: &'static str,
    pub(crate) rating: &'static str,
    pub(crate) spec_title: &'static str,
    pub(crate) spec_intro: &'static str,
    pub(crate) no_proposals: &'static str,
    pub(crate) more_not_shown: &'static str,
    pub(crate) petitions_about: &'static str,
    pub(crate) reviews_title: &'static str,
    pub(crate) no_reviews: &'static str,
    pub(crate) newest_first: &'static str,
    pub(crate) older: &'static str,
    pub(crate) by: &'static str,
    pub(crate) not_counted: &'static str,
    pub(crate) reply_title: &'static str,
    pub(crate) no_answer: &'static str,
    pub(crate) products_title: &'static str,
    pub(crate) products_intro: &'static str,
    pub(crate) no_products: &'static str,
    pub(crate) previous: &'static str,
    pub(crate) more: &'static str,
    pub(crate) plot_label: &'static str,
    pub(crate) inbox_intro: &'static str,
    pub(crate) not_producer_title: &'static str,
    pub(crate) not_producer: &'static str,
    pub(crate) unread: &'static str,
    pub(crate) mark_read: &'static str,
    pub(crate) inbox_empty: &'static str,
    pub(crate) new_mark: &'static str,
    pub(crate) a_review: &'static str,
    pub(crate) demand: &'static str,
    pub(crate) about: &'static str,
    pub(crate) threshold_crossed: &'static str,
    pub(crate) respond: &'static str,
    pub(crate) status_label: &'static str,
    pub(crate) choose_status: &'static str,
    pub(crate) answer_label: &'static str,
    pub(crate) send_answer: &'static str,
    pub(crate) err_status: &'static str,
    pub(crate) err_text_empty: &'static str,
    pub(crate) err_text_long: &'static str,
    // --- Watchdog pages (audit, attest, trust, verify, bundles) ---

    // --- Node pages (peers, follow, first run, browse) and forms ---
}

/// English.
pub(crate) const EN: Strings = Strings {
    lang: "en",
    title: "Chorus",
    skip: "Skip to the content",
    nav_home: "Home",
    log_out: "Log out",
    peers: "Peers",
    records: "Records",
    free: "Free disk",
    sync_ready: "in sync",
    sync_rebuilding: "rebuilding the sync index",
    storage_failed: "the store cannot write",
    welcome_title: "Log in to your node",
    welcome_text: "This dashboard belongs to the Chorus node running on this computer. \
                   It opens only from a one-time link the node makes.",
    welcome_how: "In a terminal, run this command, then open the link it prints (it works \
                  once, for three minutes):",
    link_used_title: "This link no longer works",
    link_used_text: "A login link works once and for three minutes. Run chorus open for a \
                     new one.",
    refused_title: "Refused",
    refused_host: "This request names another host than this node's. Open the dashboard \
                   from the link chorus open prints.",
    refused_origin: "This request comes from another site than this node's dashboard.",
    refused_csrf: "This form is out of date or did not come from this dashboard. Reload \
                   the page and try again.",
    not_found_title: "Not found",
    not_found_text: "There is no page here.",
    home_title: "What I take part in",
    you_are: "You are",
    no_profile: "You have no profile yet: chorus profile --name NAME",
    my_petitions: "My petitions",
    my_endorsements: "Petitions I endorse",
    my_groups: "My groups",
    my_reviews: "My reviews",
    none_yet: "None yet.",
    endorsers: "endorsers",
    reached: "reached",
    open: "open",
    closed: "closed",
    withdrawn: "withdrawn",
    stars: "stars",
    proposal: "Proposal",
    campaign: "Campaign",
    aimed_at: "to",
    group: "group",
    ends_in: "ends in",
    days: "days",
    progress: "Progress",
    pledged: "pledged",
    funded: "funded",
    answer: "The producer's answer",
    act: "Take part",
    you_endorse: "You endorse this petition.",
    endorse: "Endorse",
    retract: "Retract my endorsement",
    pledge_label: "Pledge (a promise, like 50EUR)",
    not_done: "Not done",
    go_back: "Back",
    founded_by: "Founded by",
    members: "members",
    members_title: "Members",
    approval: "the founder admits members",
    open_group: "anyone may join",
    you_here: "You",
    you_founder: "You founded this group.",
    you_member: "You are a member.",
    you_pending: "You asked to join; the founder has not admitted you yet.",
    join: "Join",
    ask_to_join: "Ask to join",
    pending_requests: "Asking to join",
    admit: "Admit",
    search: "Search",
    search_hint: "producers, petitions, groups, products",
    results_for: "Results for",
    no_results: "Nothing found, here or on the peers asked.",
    peers_asked: "peers asked",
    kinds: [
        ("producer", "producer"),
        ("consumer", "person"),
        ("watchdog", "watchdog"),
        ("group", "group"),
        ("petition", "petition"),
        ("proposal", "proposal"),
        ("campaign", "campaign"),
        ("product", "product"),
    ],
    nav_browse: "Browse",
    nav_write: "Write",
    nav_inbox: "Inbox",
    nav_products: "Products",
    nav_watchdog: "Watchdog",
    nav_node: "Node",
    // --- Producer pages (inbox, products, product page) ---
    status_words: [
        ("acknowledged", "acknowledged"),
        ("in-progress", "in progress"),
        ("accepted", "accepted"),
        ("declined", "declined"),
        ("done", "done"),
    ],
    decimal_sep: ".",
    reviews_count: "reviews",
    review_one: "review",
    mean_label: "mean",
    out_of_5: "out of 5",
    product_by: "A product of",
    rating: "Rating",
    spec_title: "The co-designed specification",
    spec_intro: "The proposals about this product, the most endorsed first, each with the \
                 producer's answer: together, what its buyers and its producer agree it \
                 should be.",
    no_proposals: "No proposal about this product yet.",
    more_not_shown: "more not shown",
    petitions_about: "Petitions about this product",
    reviews_title: "Reviews",
    no_reviews: "No reviews yet.",
    newest_first: "Newest",
    older: "Older",
    by: "by",
    not_counted: "no longer counts (replaced or retracted)",
    reply_title: "The producer's reply",
    no_answer: "no answer yet",
    products_title: "My products",
    products_intro: "Each of your products that a review or a petition names, with its \
                     rating over time.",
    no_products: "No review or petition names a product of yours yet.",
    previous: "Previous",
    more: "More",
    plot_label: "Mean rating over time",
    inbox_intro: "Everything aimed at your key, newest first: reviews of your products, \
                  petitions, proposals and campaigns, and the petitions that reached their \
                  threshold.",
    not_producer_title: "You are not a producer yet",
    not_producer: "No producer profile of yours is known here. Reviews and petitions reach \
                   the producer whose key they name; to be found and answer as a producer, \
                   publish a producer profile:",
    unread: "unread",
    mark_read: "Mark all as read",
    inbox_empty: "Nothing aimed at you yet.",
    new_mark: "New",
    a_review: "Review",
    demand: "Petition",
    about: "about",
    threshold_crossed: "Threshold reached:",
    respond: "Answer",
    status_label: "Status",
    choose_status: "Choose a status",
    answer_label: "Your answer",
    send_answer: "Publish the answer",
    err_status: "Choose one of the statuses in the list.",
    err_text_empty: "Write an answer.",
    err_text_long: "This answer is too long: at most 2000 bytes.",
    // --- Watchdog pages (audit, attest, trust, verify, bundles) ---

    // --- Node pages (peers, follow, first run, browse) and forms ---
};

/// French.
pub(crate) const FR: Strings = Strings {
    lang: "fr",
    title: "Chorus",
    skip: "Aller au contenu",
    nav_home: "Accueil",
    log_out: "Se déconnecter",
    peers: "Pairs",
    records: "Enregistrements",
    free: "Disque libre",
    sync_ready: "synchronisé",
    sync_rebuilding: "index de synchronisation en reconstruction",
    storage_failed: "le stockage ne peut plus écrire",
    welcome_title: "Se connecter à votre nœud",
    welcome_text: "Ce tableau de bord appartient au nœud Chorus qui tourne sur cet \
                   ordinateur. Il ne s'ouvre que par un lien à usage unique que le nœud \
                   fabrique.",
    welcome_how: "Dans un terminal, lancez cette commande, puis ouvrez le lien qu'elle \
                  affiche (il sert une fois, pendant trois minutes) :",
    link_used_title: "Ce lien ne fonctionne plus",
    link_used_text: "Un lien de connexion sert une fois, pendant trois minutes. Lancez \
                     chorus open pour en obtenir un autre.",
    refused_title: "Refusé",
    refused_host: "Cette requête nomme un autre hôte que ce nœud. Ouvrez le tableau de bord \
                   par le lien qu'affiche chorus open.",
    refused_origin: "Cette requête vient d'un autre site que le tableau de bord de ce nœud.",
    refused_csrf: "Ce formulaire est périmé ou ne vient pas de ce tableau de bord. \
                   Rechargez la page et réessayez.",
    not_found_title: "Introuvable",
    not_found_text: "Il n'y a pas de page ici.",
    home_title: "Ce à quoi je participe",
    you_are: "Vous êtes",
    no_profile: "Vous n'avez pas encore de profil : chorus profile --name NOM",
    my_petitions: "Mes pétitions",
    my_endorsements: "Les pétitions que je soutiens",
    my_groups: "Mes groupes",
    my_reviews: "Mes avis",
    none_yet: "Aucun pour l'instant.",
    endorsers: "soutiens",
    reached: "atteint",
    open: "ouverte",
    closed: "close",
    withdrawn: "retirée",
    stars: "étoiles",
    proposal: "Proposition",
    campaign: "Campagne",
    aimed_at: "à",
    group: "groupe",
    ends_in: "se termine dans",
    days: "jours",
    progress: "Avancement",
    pledged: "promis",
    funded: "financée",
    answer: "La réponse du producteur",
    act: "Participer",
    you_endorse: "Vous soutenez cette pétition.",
    endorse: "Soutenir",
    retract: "Retirer mon soutien",
    pledge_label: "Promesse (un engagement, comme 50EUR)",
    not_done: "Rien n'a été fait",
    go_back: "Retour",
    founded_by: "Fondé par",
    members: "membres",
    members_title: "Membres",
    approval: "le fondateur admet les membres",
    open_group: "ouvert à tous",
    you_here: "Vous",
    you_founder: "Vous avez fondé ce groupe.",
    you_member: "Vous êtes membre.",
    you_pending: "Vous avez demandé à rejoindre ; le fondateur ne vous a pas encore admis.",
    join: "Rejoindre",
    ask_to_join: "Demander à rejoindre",
    pending_requests: "Demandes d'adhésion",
    admit: "Admettre",
    search: "Chercher",
    search_hint: "producteurs, pétitions, groupes, produits",
    results_for: "Résultats pour",
    no_results: "Rien trouvé, ici ni chez les pairs interrogés.",
    peers_asked: "pairs interrogés",
    kinds: [
        ("producer", "producteur"),
        ("consumer", "personne"),
        ("watchdog", "vigie"),
        ("group", "groupe"),
        ("petition", "pétition"),
        ("proposal", "proposition"),
        ("campaign", "campagne"),
        ("product", "produit"),
    ],
    nav_browse: "Parcourir",
    nav_write: "Écrire",
    nav_inbox: "Boîte de réception",
    nav_products: "Produits",
    nav_watchdog: "Vigie",
    nav_node: "Nœud",
    // --- Producer pages (inbox, products, product page) ---
    status_words: [
        ("acknowledged", "pris en compte"),
        ("in-progress", "en cours"),
        ("accepted", "accepté"),
        ("declined", "refusé"),
        ("done", "fait"),
    ],
    decimal_sep: ",",
    reviews_count: "avis",
    review_one: "avis",
    mean_label: "moyenne",
    out_of_5: "sur 5",
    product_by: "Un produit de",
    rating: "Note",
    spec_title: "Le cahier des charges co-construit",
    spec_intro: "Les propositions sur ce produit, les plus soutenues d'abord, chacune avec \
                 la réponse du producteur : ensemble, ce que ses acheteurs et son \
                 producteur conviennent qu'il doit être.",
    no_proposals: "Aucune proposition sur ce produit pour l'instant.",
    more_not_shown: "de plus, non affichés",
    petitions_about: "Pétitions sur ce produit",
    reviews_title: "Avis",
    no_reviews: "Aucun avis pour l'instant.",
    newest_first: "Les plus récents",
    older: "Plus anciens",
    by: "par",
    not_counted: "ne compte plus (remplacé ou retiré)",
    reply_title: "La réponse du producteur",
    no_answer: "pas encore de réponse",
    products_title: "Mes produits",
    products_intro: "Chacun de vos produits que nomme un avis ou une pétition, avec sa note \
                     au fil du temps.",
    no_products: "Aucun avis ni aucune pétition ne nomme encore un de vos produits.",
    previous: "Précédents",
    more: "Suivants",
    plot_label: "Note moyenne au fil du temps",
    inbox_intro: "Tout ce qui s'adresse à votre clé, du plus récent au plus ancien : les avis \
                  sur vos produits, les pétitions, propositions et campagnes, et les \
                  pétitions qui ont atteint leur seuil.",
    not_producer_title: "Vous n'êtes pas encore producteur",
    not_producer: "Aucun profil de producteur à vous n'est connu ici. Les avis et les \
                   pétitions parviennent au producteur dont ils nomment la clé ; pour être \
                   trouvé et répondre en tant que producteur, publiez un profil de \
                   producteur :",
    unread: "non lus",
    mark_read: "Tout marquer comme lu",
    inbox_empty: "Rien ne vous a encore été adressé.",
    new_mark: "Nouveau",
    a_review: "Avis",
    demand: "Pétition",
    about: "sur",
    threshold_crossed: "Seuil atteint :",
    respond: "Répondre",
    status_label: "Statut",
    choose_status: "Choisissez un statut",
    answer_label: "Votre réponse",
    send_answer: "Publier la réponse",
    err_status: "Choisissez l'un des statuts de la liste.",
    err_text_empty: "Écrivez une réponse.",
    err_text_long: "Cette réponse est trop longue : 2000 octets au plus.",
    // --- Watchdog pages (audit, attest, trust, verify, bundles) ---

    // --- Node pages (peers, follow, first run, browse) and forms ---
};

impl Strings {
    /// A search result's kind, in words.
    pub(crate) fn kind(&self, kind: &str) -> &'static str {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, w)| *w)
            .unwrap_or("")
    }
}

/// The strings for a request's `Accept-Language` header: French if a French tag comes
/// before any English one (by quality, then order), else English.
pub(crate) fn pick(accept_language: Option<&str>) -> &'static Strings {
    let Some(header) = accept_language else {
        return &EN;
    };
    let mut best: Option<(f32, usize, &'static Strings)> = None;
    for (i, part) in header.split(',').enumerate() {
        let mut it = part.trim().split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let strings = if tag == "fr" || tag.starts_with("fr-") {
            &FR
        } else if tag == "en" || tag.starts_with("en-") {
            &EN
        } else {
            continue;
        };
        if q > 0.0 && best.is_none_or(|(bq, _, _)| q > bq) {
            best = Some((q, i, strings));
        }
    }
    best.map(|(_, _, s)| s).unwrap_or(&EN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_is_chosen_when_the_browser_prefers_it() {
        assert_eq!(pick(None).lang, "en");
        assert_eq!(pick(Some("fr-FR,fr;q=0.9,en;q=0.8")).lang, "fr");
        assert_eq!(pick(Some("en-GB,fr;q=0.9")).lang, "en");
        assert_eq!(pick(Some("de-DE,fr;q=0.5")).lang, "fr");
        assert_eq!(pick(Some("fr;q=0.3,en;q=0.7")).lang, "en");
        assert_eq!(pick(Some("fr;q=0")).lang, "en");
        assert_eq!(pick(Some("garbage;;;,")).lang, "en");
    }
}
