//! The stylesheet, scripts and icon, compiled into the binary so a replica serves its pages
//! offline.
//!
//! Every asset is served under a name that carries a hash of its content
//! (`/assets/brigade.3f2a9c1d0b7e4a55.css`), with `Cache-Control: public, max-age=31536000,
//! immutable`: a browser or a CDN keeps it for a year and never asks again, and a release that
//! changes a file changes its name, so nobody sees a stale script with a new page. Pages refer
//! to assets through [`url`]. The plain name (`/assets/brigade.css`) still answers, with
//! `no-cache`, for bookmarks and hand-written links.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use brigade_core::Problem;
use http::{HeaderValue, header};
use sha2::{Digest, Sha256};

/// One embedded file: its plain name under `/assets/`, media type and bytes.
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
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../../../web/favicon.svg"),
    },
];

/// A year: the longest lifetime HTTP caches are asked to honour (RFC 9111 recommends no more).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The content-hashed name of every asset, index for index with [`ASSETS`].
static HASHED_NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| hashed_name(asset.name, asset.body))
        .collect()
});

/// `name` with the first 16 hex digits of the SHA-256 of `body` before its extension:
/// `brigade.css` → `brigade.3f2a9c1d0b7e4a55.css`.
fn hashed_name(name: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.{hash}.{extension}"),
        None => format!("{name}.{hash}"),
    }
}

/// The URL a page uses for the asset `name` (its content-hashed name). An unknown name is a
/// mistake in a page, caught by the tests; it falls back to the plain name.
pub(super) fn url(name: &str) -> String {
    let hashed = ASSETS
        .iter()
        .position(|asset| asset.name == name)
        .map_or(name, |index| HASHED_NAMES[index].as_str());
    format!("/assets/{hashed}")
}

/// `GET /assets/{name}`: an embedded file by its hashed name (cached for a year) or its plain
/// name (revalidated every time), or 404 problem+json.
pub(super) async fn serve(Path(name): Path<String>) -> Response {
    let hashed = HASHED_NAMES.iter().position(|hashed| *hashed == name);
    let found = hashed.map(|index| (&ASSETS[index], IMMUTABLE)).or_else(|| {
        ASSETS
            .iter()
            .find(|asset| asset.name == name)
            .map(|asset| (asset, "no-cache"))
    });
    match found {
        Some((asset, cache_control)) => respond(asset, cache_control),
        None => Problem::not_found(format!("no asset named {name}")).into_response(),
    }
}

/// `GET /favicon.ico`: browsers ask for it on every site that names no icon, so it answers
/// with brigade's icon rather than a 404 in the console.
pub(super) async fn favicon() -> Response {
    match ASSETS.iter().find(|asset| asset.name == "favicon.svg") {
        Some(asset) => respond(asset, "public, max-age=86400"),
        None => Problem::not_found("no icon").into_response(),
    }
}

fn respond(asset: &Asset, cache_control: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_keep_the_extension_and_change_with_the_content() {
        let a = hashed_name("brigade.css", "body { color: red }");
        let b = hashed_name("brigade.css", "body { color: blue }");
        assert!(a.starts_with("brigade.") && a.ends_with(".css"), "{a}");
        assert_eq!(a.len(), "brigade.".len() + 16 + ".css".len());
        assert_ne!(a, b);
    }

    #[test]
    fn every_asset_has_a_url_with_its_hash() {
        for asset in ASSETS {
            let url = url(asset.name);
            assert_ne!(url, format!("/assets/{}", asset.name), "{url}");
            assert!(HASHED_NAMES.iter().any(|name| url.ends_with(name.as_str())));
        }
    }
}
