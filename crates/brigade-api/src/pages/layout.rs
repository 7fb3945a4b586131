//! The frame every page shares: head, skip link, navigation, the log-in panel and the message
//! area where problem+json answers are shown.

use maud::{DOCTYPE, Markup, html};

use super::assets::url;

/// Which page is current (marked in the navigation with `aria-current`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Order,
    Kitchen,
    Courier,
}

/// A full HTML document around `main`, loading the shared script and `script`.
pub(super) fn page(title: &str, section: Section, script: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · brigade" }
                link rel="icon" type="image/svg+xml" href=(url("favicon.svg"));
                link rel="stylesheet" href=(url("brigade.css"));
                script src=(url("common.js")) defer {}
                script src=(url(script)) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "brigade" }
                    nav aria-label="Pages" {
                        ul {
                            (nav_link("/", "Order", section == Section::Order))
                            (nav_link("/kitchen", "Kitchen", section == Section::Kitchen))
                            (nav_link("/courier", "Courier", section == Section::Courier))
                        }
                    }
                    div #who aria-live="polite" {}
                }
                main #main {
                    h1 { (title) }
                    div #messages aria-live="polite" {}
                    (main)
                }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        li {
            @if current {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    }
}

/// The log-in form (and, when `sign_up` is set, a sign-up button using the same fields).
/// Hidden by the script while a token is kept.
pub(super) fn login_panel(sign_up: bool) -> Markup {
    html! {
        section #login-panel aria-labelledby="login-title" {
            h2 #login-title { @if sign_up { "Sign up or log in" } @else { "Log in" } }
            form #login-form novalidate {
                div.field {
                    label for="login-email" { "E-mail" }
                    input #login-email type="email" name="email" autocomplete="username" required;
                }
                div.field {
                    label for="login-password" { "Password" }
                    input #login-password type="password" name="password" autocomplete="current-password" required;
                }
                div.actions {
                    button #login-button type="submit" { "Log in" }
                    @if sign_up {
                        button #signup-button type="button" { "Sign up" }
                    }
                }
            }
        }
    }
}
