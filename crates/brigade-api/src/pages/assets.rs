//! The stylesheet and scripts, compiled into the binary so a replica serves its pages offline.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use brigade_core::Problem;
use http::{HeaderValue, header};

/// One embedded file: its name under `/assets/`, media type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Every asset the pages reference. A new file in `web/` is served only once listed here.
const ASSETS: &[Asset] = &[
    Asset {
        name: "brigade.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../../web/brigade.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../../web/common.js"),
    },
    Asset {
        name: "ordering.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../../web/ordering.js"),
    },
    Asset {
        name: "order.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../../web/order.js"),
    },
    Asset {
        name: "kitchen.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../../web/kitchen.js"),
    },
    Asset {
        name: "courier.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../../web/courier.js"),
    },
];

/// `GET /assets/{name}`: an embedded file, or 404 problem+json.
pub(super) async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                // Assets change only with the binary; a short cache keeps rollouts visible.
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                ),
            ],
            asset.body,
        )
            .into_response(),
        None => Problem::not_found(format!("no asset named {name}")).into_response(),
    }
}
