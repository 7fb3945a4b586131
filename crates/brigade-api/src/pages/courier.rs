//! The courier view (`/courier`): the shop's orders ready at the pass and those on the road,
//! with pick-up and delivered buttons; `courier.js` fills and refreshes it.

use maud::{Markup, html};

use super::layout::{self, Section};

/// `GET /courier`: the frame; the data needs the courier's token, so the script loads it.
pub(super) async fn page() -> Markup {
    layout::page("Deliveries", Section::Courier, "courier.js", render())
}

fn render() -> Markup {
    html! {
        section #courier hidden aria-labelledby="ready-title" {
            h2 #ready-title { "Ready for pick-up" }
            p #no-ready { "Nothing is waiting at the pass." }
            ul #ready-orders.tickets {}
            h2 { "On the road" }
            p #no-road { "Nothing on the road." }
            ul #road-orders.tickets {}
            p.small #courier-updated aria-live="off" {}
        }
        (layout::login_panel(false))
    }
}
