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

    // --- Watchdog pages (audit, attest, trust, verify, bundles) ---
    pub(crate) audit_title: &'static str,
    pub(crate) audit_intro: &'static str,
    pub(crate) audit_none: &'static str,
    pub(crate) audit_run: &'static str,
    pub(crate) audit_run_again: &'static str,
    pub(crate) audit_run_hint: &'static str,
    pub(crate) audit_running: &'static str,
    pub(crate) audit_reload: &'static str,
    pub(crate) audit_last: &'static str,
    pub(crate) audit_took: &'static str,
    pub(crate) audit_failed: &'static str,
    pub(crate) audit_records: &'static str,
    pub(crate) audit_verified: &'static str,
    pub(crate) audit_petitions: &'static str,
    pub(crate) audit_errors: &'static str,
    pub(crate) audit_warnings: &'static str,
    pub(crate) audit_clean: &'static str,
    pub(crate) audit_by_kind: &'static str,
    pub(crate) audit_all: &'static str,
    pub(crate) audit_findings: &'static str,
    pub(crate) audit_of: &'static str,
    pub(crate) audit_previous: &'static str,
    pub(crate) audit_next: &'static str,
    pub(crate) severity_error: &'static str,
    pub(crate) severity_warning: &'static str,
    pub(crate) attest_one_actor: &'static str,
    pub(crate) attest_chain: &'static str,
    pub(crate) attest_invalid: &'static str,
    pub(crate) attest_stale: &'static str,
    pub(crate) attest_nothing: &'static str,
    pub(crate) attested_done: &'static str,
    pub(crate) trust_title: &'static str,
    pub(crate) trust_intro: &'static str,
    pub(crate) trust_none: &'static str,
    pub(crate) trust_who: &'static str,
    pub(crate) trust_from: &'static str,
    pub(crate) trust_from_config: &'static str,
    pub(crate) trust_from_here: &'static str,
    pub(crate) trust_remove: &'static str,
    pub(crate) trust_add_title: &'static str,
    pub(crate) trust_key_label: &'static str,
    pub(crate) trust_key_hint: &'static str,
    pub(crate) trust_key_missing: &'static str,
    pub(crate) trust_key_bad: &'static str,
    pub(crate) trust_add: &'static str,
    pub(crate) verify_title: &'static str,
    pub(crate) verify_intro: &'static str,
    pub(crate) verify_file: &'static str,
    pub(crate) verify_hint: &'static str,
    pub(crate) verify_submit: &'static str,
    pub(crate) verify_no_file: &'static str,
    pub(crate) verify_broken: &'static str,
    pub(crate) verify_valid: &'static str,
    pub(crate) verify_valid_text: &'static str,
    pub(crate) verify_petition: &'static str,
    pub(crate) verify_count: &'static str,
    pub(crate) verify_root: &'static str,
    pub(crate) verify_state: &'static str,
    pub(crate) verify_first_reached: &'static str,
    pub(crate) verify_never: &'static str,
    pub(crate) verify_cites_root: &'static str,
    pub(crate) verify_cites_other: &'static str,
    pub(crate) verify_here: &'static str,
    pub(crate) verify_same: &'static str,
    pub(crate) verify_not_held: &'static str,
    pub(crate) verify_invalid: &'static str,
    pub(crate) verify_reason: &'static str,
    pub(crate) verify_culprit: &'static str,
    pub(crate) verify_record: &'static str,
    pub(crate) verify_by: &'static str,
    pub(crate) verify_culprit_claim: &'static str,
    pub(crate) too_large_title: &'static str,
    pub(crate) too_large_text: &'static str,
    pub(crate) too_large_offline: &'static str,
    /// "and N more": the words before and after the number.
    pub(crate) more: (&'static str, &'static str),
    /// The audit's finding codes, in words.
    pub(crate) finding_kinds: [(&'static str, &'static str); 8],
    /// The names of an audit finding's evidence fields, in words.
    pub(crate) evidence_labels: [(&'static str, &'static str); 21],
    // (end of the watchdog pages' strings)

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

    // --- Watchdog pages (audit, attest, trust, verify, bundles) ---
    audit_title: "Audit",
    audit_intro: "The audit re-verifies every record this node stores, recomputes every count \
                  from the raw records, and looks for what sybils and forgers leave behind. \
                  Errors should never happen; warnings are suspicions, for people to weigh.",
    audit_none: "No audit has run since the node started.",
    audit_run: "Run the audit",
    audit_run_again: "Run it again",
    audit_run_hint: "It reads every record: on a large store it takes minutes, and this page \
                     shows the last report meanwhile.",
    audit_running: "An audit is running, started",
    audit_reload: "Reload",
    audit_last: "Last report",
    audit_took: "took",
    audit_failed: "The audit failed:",
    audit_records: "records read",
    audit_verified: "signatures verified",
    audit_petitions: "petitions recounted",
    audit_errors: "errors",
    audit_warnings: "warnings",
    audit_clean: "Nothing found: no error, no warning.",
    audit_by_kind: "Findings by kind",
    audit_all: "All",
    audit_findings: "Findings",
    audit_of: "of",
    audit_previous: "Previous",
    audit_next: "Next",
    severity_error: "Error",
    severity_warning: "Warning",
    attest_one_actor: "Attest: these keys look like one actor",
    attest_chain: "An attestation names at most 64 keys: these go in several that share a key, \
                   so trusted counts take them as one actor (up to 1,009 keys).",
    attest_invalid: "Attest: this record is invalid",
    attest_stale: "This finding is from a report that is no longer the last one. Look at the \
                   last report and try again.",
    attest_nothing: "This finding names nothing to attest about.",
    attested_done: "Signed and published:",
    trust_title: "Trusted watchdogs",
    trust_intro: "The watchdogs you trust change what petitions show: beside the raw count, a \
                  trusted count in which each set of keys they judged to be one actor counts \
                  once, and the watchdogs whose verified count matches this node's.",
    trust_none: "You trust no watchdog yet: petitions show their raw counts only.",
    trust_who: "Watchdog",
    trust_from: "Listed by",
    trust_from_config: "the config file",
    trust_from_here: "this dashboard",
    trust_remove: "Stop trusting",
    trust_add_title: "Trust a watchdog",
    trust_key_label: "The watchdog's key",
    trust_key_hint: "Its whole key, 64 hex digits. A name or the start of a key is not taken: \
                     anyone may choose a name.",
    trust_key_missing: "Give the watchdog's key.",
    trust_key_bad: "This is not a whole key: give all 64 hex digits of the watchdog's key (a \
                    name or the start of a key is not taken, as anyone may choose a name).",
    trust_add: "Trust",
    verify_title: "Verify a bundle",
    verify_intro: "A bundle holds a petition and every record behind its count, each signed by \
                   its author. The node checks a bundle as chorus verify does, from the file \
                   alone: every signature, that every record belongs, the count and the set \
                   root.",
    verify_file: "Bundle file",
    verify_hint: "A file saved from a petition's page, or written by",
    verify_submit: "Verify",
    verify_no_file: "Choose a bundle file first.",
    verify_broken: "The file did not arrive whole. Choose it again.",
    verify_valid: "Valid",
    verify_valid_text: "Every signature holds, every record belongs, and the records give the \
                        count and root the bundle claims.",
    verify_petition: "Petition",
    verify_count: "Endorsers counted",
    verify_root: "Set root",
    verify_state: "State",
    verify_first_reached: "First reached",
    verify_never: "never",
    verify_cites_root: "the answer cites this root: the producer acknowledged these endorsements",
    verify_cites_other: "the answer cites another root",
    verify_here: "This node counts now",
    verify_same: "(the same)",
    verify_not_held: "nothing: it does not hold this petition",
    verify_invalid: "Invalid: refused",
    verify_reason: "What is wrong:",
    verify_culprit: "Culprit:",
    verify_record: "record",
    verify_by: "by",
    verify_culprit_claim: "the bundle's own claim (its count, root or first reached), not a \
                           record.",
    too_large_title: "File too large",
    too_large_text: "This node takes at most",
    too_large_offline: "Check a larger bundle on your computer, without sending it:",
    more: ("and", "more"),
    finding_kinds: [
        ("invalid-record", "Invalid records"),
        ("tally-mismatch", "Counts that differ from the records"),
        ("wrong-key", "Records signed by the wrong key"),
        ("kind-rule", "Records that break a rule"),
        ("sybil-burst", "Bursts of fresh keys"),
        ("idle-keys", "Keys that only endorse"),
        ("timestamp", "Suspect times"),
        ("late-endorsement", "Endorsements that came late"),
    ],
    evidence_labels: [
        ("id", "Record"),
        ("stored_as", "Stored as"),
        ("author", "Author"),
        ("expected", "Expected key"),
        ("rule", "Rule"),
        ("reason", "Why"),
        ("petition", "Petition"),
        ("target", "Points at"),
        ("count", "How many"),
        ("keys", "Keys"),
        ("from", "First seen from"),
        ("to", "to"),
        ("created_at", "Says it was made"),
        ("target_created_at", "Target made"),
        ("deadline", "Deadline"),
        ("first_seen", "First seen here"),
        ("now", "This node's clock"),
        ("key", "Derived state"),
        ("stored", "Stored"),
        ("recomputed", "Recomputed"),
        ("wire_blake3", "BLAKE3 of the bytes"),
    ],
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

    // --- Watchdog pages (audit, attest, trust, verify, bundles) ---
    audit_title: "Audit",
    audit_intro: "L'audit revérifie chaque enregistrement que ce nœud conserve, recalcule chaque \
                  compte à partir des enregistrements bruts et cherche les traces que laissent \
                  les faux comptes et les faussaires. Une erreur ne devrait jamais arriver ; un \
                  avertissement est un soupçon, à examiner.",
    audit_none: "Aucun audit n'a été lancé depuis le démarrage du nœud.",
    audit_run: "Lancer l'audit",
    audit_run_again: "Le relancer",
    audit_run_hint: "Il lit chaque enregistrement : sur un gros stockage, cela prend quelques \
                     minutes, et cette page montre en attendant le dernier rapport.",
    audit_running: "Un audit est en cours, lancé le",
    audit_reload: "Recharger",
    audit_last: "Dernier rapport",
    audit_took: "durée",
    audit_failed: "L'audit a échoué :",
    audit_records: "enregistrements lus",
    audit_verified: "signatures vérifiées",
    audit_petitions: "pétitions recomptées",
    audit_errors: "erreurs",
    audit_warnings: "avertissements",
    audit_clean: "Rien trouvé : aucune erreur, aucun avertissement.",
    audit_by_kind: "Constats par type",
    audit_all: "Tous",
    audit_findings: "Constats",
    audit_of: "sur",
    audit_previous: "Précédents",
    audit_next: "Suivants",
    severity_error: "Erreur",
    severity_warning: "Avertissement",
    attest_one_actor: "Attester : ces clés semblent être un seul acteur",
    attest_chain: "Une attestation nomme au plus 64 clés : celles-ci vont dans plusieurs \
                   attestations qui partagent une clé, que les comptes de confiance prennent \
                   pour un seul acteur (jusqu'à 1 009 clés).",
    attest_invalid: "Attester : cet enregistrement est invalide",
    attest_stale: "Ce constat vient d'un rapport qui n'est plus le dernier. Consultez le dernier \
                   rapport et réessayez.",
    attest_nothing: "Ce constat ne nomme rien sur quoi attester.",
    attested_done: "Signé et publié :",
    trust_title: "Vigies de confiance",
    trust_intro: "Les vigies auxquelles vous faites confiance changent ce qu'affichent les \
                  pétitions : à côté du compte brut, un compte de confiance où chaque ensemble \
                  de clés qu'elles ont jugé être un seul acteur compte une fois, et les vigies \
                  dont le compte vérifié correspond à celui de ce nœud.",
    trust_none: "Vous ne faites encore confiance à aucune vigie : les pétitions n'affichent que \
                 leur compte brut.",
    trust_who: "Vigie",
    trust_from: "Inscrite par",
    trust_from_config: "le fichier de configuration",
    trust_from_here: "ce tableau de bord",
    trust_remove: "Retirer la confiance",
    trust_add_title: "Faire confiance à une vigie",
    trust_key_label: "La clé de la vigie",
    trust_key_hint: "Sa clé entière, 64 chiffres hexadécimaux. Un nom ou un début de clé ne sont \
                     pas acceptés : n'importe qui peut choisir un nom.",
    trust_key_missing: "Donnez la clé de la vigie.",
    trust_key_bad: "Ce n'est pas une clé entière : donnez les 64 chiffres hexadécimaux de la clé \
                    de la vigie (un nom ou un début de clé ne sont pas acceptés, car n'importe \
                    qui peut choisir un nom).",
    trust_add: "Faire confiance",
    verify_title: "Vérifier un dossier",
    verify_intro: "Un dossier contient une pétition et chaque enregistrement derrière son \
                   compte, chacun signé par son auteur. Le nœud vérifie un dossier comme le fait \
                   chorus verify, à partir du seul fichier : chaque signature, l'appartenance de \
                   chaque enregistrement, le compte et la racine de l'ensemble.",
    verify_file: "Fichier du dossier",
    verify_hint: "Un fichier enregistré depuis la page d'une pétition, ou écrit par",
    verify_submit: "Vérifier",
    verify_no_file: "Choisissez d'abord un fichier de dossier.",
    verify_broken: "Le fichier n'est pas arrivé en entier. Choisissez-le de nouveau.",
    verify_valid: "Valide",
    verify_valid_text: "Chaque signature tient, chaque enregistrement a sa place, et les \
                        enregistrements donnent le compte et la racine qu'annonce le dossier.",
    verify_petition: "Pétition",
    verify_count: "Soutiens comptés",
    verify_root: "Racine de l'ensemble",
    verify_state: "État",
    verify_first_reached: "Atteinte pour la première fois",
    verify_never: "jamais",
    verify_cites_root: "la réponse cite cette racine : le producteur a pris acte de ces soutiens",
    verify_cites_other: "la réponse cite une autre racine",
    verify_here: "Ce nœud compte maintenant",
    verify_same: "(le même)",
    verify_not_held: "rien : il ne détient pas cette pétition",
    verify_invalid: "Invalide : refusé",
    verify_reason: "Ce qui ne va pas :",
    verify_culprit: "En cause :",
    verify_record: "l'enregistrement",
    verify_by: "de",
    verify_culprit_claim: "ce qu'annonce le dossier lui-même (son compte, sa racine ou sa \
                           première atteinte), pas un enregistrement.",
    too_large_title: "Fichier trop gros",
    too_large_text: "Ce nœud accepte au plus",
    too_large_offline: "Vérifiez un dossier plus gros sur votre ordinateur, sans l'envoyer :",
    more: ("et", "autres"),
    finding_kinds: [
        ("invalid-record", "Enregistrements invalides"),
        (
            "tally-mismatch",
            "Comptes qui diffèrent des enregistrements",
        ),
        ("wrong-key", "Enregistrements signés par la mauvaise clé"),
        ("kind-rule", "Enregistrements qui enfreignent une règle"),
        ("sybil-burst", "Rafales de clés neuves"),
        ("idle-keys", "Clés qui ne font que soutenir"),
        ("timestamp", "Dates suspectes"),
        ("late-endorsement", "Soutiens arrivés en retard"),
    ],
    evidence_labels: [
        ("id", "Enregistrement"),
        ("stored_as", "Conservé sous"),
        ("author", "Auteur"),
        ("expected", "Clé attendue"),
        ("rule", "Règle"),
        ("reason", "Pourquoi"),
        ("petition", "Pétition"),
        ("target", "Vise"),
        ("count", "Combien"),
        ("keys", "Clés"),
        ("from", "Vues pour la première fois du"),
        ("to", "au"),
        ("created_at", "Dit avoir été fait le"),
        ("target_created_at", "Cible faite le"),
        ("deadline", "Échéance"),
        ("first_seen", "Vu ici pour la première fois"),
        ("now", "Horloge de ce nœud"),
        ("key", "État dérivé"),
        ("stored", "Conservé"),
        ("recomputed", "Recalculé"),
        ("wire_blake3", "BLAKE3 des octets"),
    ],
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
