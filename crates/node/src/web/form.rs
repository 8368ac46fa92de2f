//! Form fields with their errors beside them: a field that the node refused is marked
//! `aria-invalid` and names its message (`aria-describedby`), so a screen reader reads the
//! error with the field, and the values typed are kept.

use maud::{html, Markup};

use crate::api::ApiError;

/// What kind of control a field is.
pub(super) enum Control<'a> {
    /// A line of text (`inputmode` given for numbers and amounts).
    Text(Option<&'a str>),
    /// Several lines.
    Area,
    /// A date (`YYYY-MM-DD`).
    Date,
    /// One of some choices: (value, words).
    Select(&'a [(&'a str, &'a str)]),
}

/// One field of a form.
pub(super) struct Field<'a> {
    /// The form field's name, also its id.
    pub(super) name: &'a str,
    pub(super) label: &'a str,
    pub(super) value: &'a str,
    pub(super) control: Control<'a>,
    /// A hint shown under the field.
    pub(super) hint: Option<&'a str>,
    pub(super) required: bool,
}

impl Field<'_> {
    /// The field, with `problem`'s message beside it when the problem is this field's.
    pub(super) fn render(&self, problem: Option<&Problem>) -> Markup {
        let error = problem
            .filter(|p| p.field.as_deref() == Some(self.name))
            .map(|p| p.message.as_str());
        let error_id = format!("{}-error", self.name);
        let hint_id = format!("{}-hint", self.name);
        let described = match (error.is_some(), self.hint.is_some()) {
            (true, true) => Some(format!("{error_id} {hint_id}")),
            (true, false) => Some(error_id.clone()),
            (false, true) => Some(hint_id.clone()),
            (false, false) => None,
        };
        let invalid = error.map(|_| "true");
        html! {
            div.field.invalid[error.is_some()] {
                label for=(self.name) { (self.label) }
                @match &self.control {
                    Control::Text(mode) => {
                        input #(self.name) type="text" name=(self.name) value=(self.value)
                            inputmode=[*mode] required[self.required]
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                    }
                    Control::Date => {
                        input #(self.name) type="date" name=(self.name) value=(self.value)
                            required[self.required]
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                    }
                    Control::Area => {
                        textarea #(self.name) name=(self.name) rows="5" required[self.required]
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()] { (self.value) }
                    }
                    Control::Select(choices) => {
                        select #(self.name) name=(self.name)
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()] {
                            @for (v, words) in choices.iter() {
                                option value=(v) selected[*v == self.value] { (words) }
                            }
                        }
                    }
                }
                @if let Some(h) = self.hint {
                    small.hint #(hint_id) { (h) }
                }
                @if let Some(e) = error {
                    p.field-error #(error_id) { (e) }
                }
            }
        }
    }
}

/// Why a form did nothing: the field at fault (if one is), and the message.
pub(super) struct Problem {
    pub(super) field: Option<String>,
    pub(super) message: String,
}

impl Problem {
    /// A problem with one field.
    pub(super) fn at(field: &str, message: impl Into<String>) -> Problem {
        Problem {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// The node's refusal, put beside the field it is about. `by_code` maps the API's
    /// error codes to the form's fields; a protocol error that names a record field
    /// (`invalid text in "title": …`) goes beside that field when the form has it.
    pub(super) fn of(e: &ApiError, by_code: &[(&str, &str)], fields: &[&str]) -> Problem {
        let message = e.message().to_string();
        let named = ["invalid text in \"", "invalid field \""]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('"').next())
            .filter(|f| fields.contains(f))
            .map(str::to_string);
        let field = named.or_else(|| {
            by_code
                .iter()
                .find(|(code, _)| *code == e.code())
                .map(|(_, f)| f.to_string())
        });
        Problem { field, message }
    }

    /// The message, when no field shows it (a problem of the whole form).
    pub(super) fn general(&self) -> Option<&str> {
        self.field.is_none().then_some(self.message.as_str())
    }
}

/// A form's problem with no field, above the form.
pub(super) fn general(problem: Option<&Problem>) -> Markup {
    html! {
        @if let Some(m) = problem.and_then(Problem::general) {
            p.field-error role="alert" { (m) }
        } @else if let Some(p) = problem {
            // Announced once for the whole form; the message itself sits by its field.
            p.visually-hidden role="alert" { (p.message) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn an_error_goes_beside_its_field() {
        let e = ApiError::bad("invalid-text", "invalid text in \"title\": empty");
        let p = Problem::of(&e, &[], &["title", "text"]);
        assert_eq!(p.field.as_deref(), Some("title"));
        let f = Field {
            name: "title",
            label: "Title",
            value: "",
            control: Control::Text(None),
            hint: None,
            required: true,
        };
        let html = f.render(Some(&p)).into_string();
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert!(html.contains("aria-describedby=\"title-error\""), "{html}");
        assert!(html.contains("id=\"title-error\""), "{html}");
        // Another field of the same form shows no error.
        let other = Field {
            name: "text",
            label: "Text",
            value: "kept",
            control: Control::Area,
            hint: None,
            required: true,
        };
        let html = other.render(Some(&p)).into_string();
        assert!(!html.contains("aria-invalid"), "{html}");
        assert!(html.contains(">kept</textarea>"), "{html}");
    }

    #[test]
    fn codes_map_to_fields_and_the_rest_is_general() {
        let e = ApiError::bad("bad_goal", "a campaign needs a goal, like 3000EUR");
        let p = Problem::of(&e, &[("bad_goal", "goal")], &["goal"]);
        assert_eq!(p.field.as_deref(), Some("goal"));
        assert!(p.general().is_none());
        let e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "try later");
        let p = Problem::of(&e, &[("bad_goal", "goal")], &["goal"]);
        assert_eq!(p.general(), Some("try later"));
        // A field the form does not have is not named.
        let e = ApiError::bad("invalid-text", "invalid text in \"comment\": too long");
        assert!(Problem::of(&e, &[], &["title"]).field.is_none());
    }
}
