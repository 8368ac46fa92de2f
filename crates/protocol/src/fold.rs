//! How names and titles are matched against what a person types (PROTOCOL.md §11.1): case
//! and accents are ignored, so "cafe" finds "Café" and "LEDITO" finds "Ledito".
//!
//! [`fold`] decomposes the text (Unicode NFKD), drops the combining marks (the accents),
//! and lowercases what is left. [`words`] splits folded text into words: runs of letters
//! and digits.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// `text` with case and accents folded away: NFKD, combining marks dropped, lowercase.
pub fn fold(text: &str) -> String {
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words of `text`, folded ([`fold`]): maximal runs of alphanumeric characters, in
/// order, repeats kept.
pub fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Do two names match once folded ([`fold`]), surrounding spaces aside?
pub fn same_name(a: &str, b: &str) -> bool {
    fold(a.trim()) == fold(b.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_accents_are_folded_away() {
        assert_eq!(fold("Café"), "cafe");
        assert_eq!(fold("CAFÉ"), "cafe");
        assert_eq!(fold("Crème Brûlée"), "creme brulee");
        assert_eq!(fold("Ångström"), "angstrom");
        // Already folded text is unchanged; so is text without letters.
        assert_eq!(fold("ledito 42"), "ledito 42");
        assert_eq!(fold(""), "");
        assert!(same_name("  Café Ledito ", "cafe ledito"));
        assert!(!same_name("Café", "Cafés"));
    }

    #[test]
    fn words_are_runs_of_letters_and_digits() {
        assert_eq!(
            words("Repairable kettles — 5-year warranty, S'il vous plaît!"),
            [
                "repairable",
                "kettles",
                "5",
                "year",
                "warranty",
                "s",
                "il",
                "vous",
                "plait"
            ]
        );
        assert!(words(" -- ").is_empty());
    }
}
