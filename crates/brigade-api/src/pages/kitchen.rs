//! The kitchen display (`/kitchen`): the staff member's shop, a station picker, new orders to
//! accept, and the station's FIFO ticket queue with claim/complete; `kitchen.js` fills and
//! refreshes it from the kitchen API.

use maud::{Markup, html};

use super::layout::{self, Section};

/// `GET /kitchen`: the frame; the data needs the staff member's token, so the script loads it.
pub(super) async fn page() -> Markup {
    layout::page("Kitchen display", Section::Kitchen, "kitchen.js", render())
}

fn render() -> Markup {
    html! {
        section #kitchen hidden aria-labelledby="station-title" {
            div.field {
                label for="station-select" { "Station" }
                select #station-select {}
            }
            h2 #station-title { "Tickets, oldest first" }
            p #no-tickets { "No open tickets." }
            ol #tickets.tickets {}
            h2 { "New orders to accept" }
            p #no-orders { "No new orders." }
            ul #new-orders.tickets {}
            p.small #kitchen-updated aria-live="off" {}
        }
        (layout::login_panel(false))
    }
}
