//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Each route declares its own successes and the errors only it gives (403, 404, 409, …) in
//! its `#[utoipa::path]`. The answers that follow from what an operation *is* are added here,
//! once, by [`complete`], so a new route cannot forget them:
//!
//! | status | added to                                     | because                              |
//! |--------|----------------------------------------------|--------------------------------------|
//! | 400    | operations with path, query or header params | a malformed id, parameter or header  |
//! | 400, 413, 415, 422 | operations with a JSON body      | [`crate::extract::Json`]'s rejections |
//! | 422    | operations with query parameters             | a control character in a query key or value |
//! | 401    | every operation                              | the token is checked on every route  |
//! | 503    | every operation                              | the request timeout; the database    |
//!
//! Every error response, declared or added, gets the problem+json content and a description.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    Content, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder, Schema, Type,
    schema::ObjectBuilder,
};

/// The media type of every error body.
const PROBLEM_JSON: &str = brigade_core::problem::PROBLEM_JSON;

/// The document's fixed parts: info, tags, shared schemas, the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "brigade",
        description = "The brigade ordering service: shops, stations, the catalogue, orders and the kitchen. \
Errors are application/problem+json (RFC 9457) with the request id as `instance`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "orders", description = "Placing and following orders"),
        (name = "kitchen", description = "Station queues and tickets"),
        (name = "shops", description = "Shops, stations, menus and load"),
        (name = "catalogue", description = "Items that can be ordered"),
        (name = "accounts", description = "Sign-up, log-in, log-out"),
        (name = "reports", description = "Precomputed reports: daily sales per shop"),
        (name = "operations", description = "Health and metrics"),
    ),
    components(schemas(brigade_core::Problem, brigade_core::FieldError)),
    modifiers(&BearerScheme)
)]
pub(crate) struct ApiDoc;

/// Declares the `bearer` security scheme, so Swagger UI can authorise with a login token.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A token from POST /api/v1/sessions"))
                    .build(),
            ),
        );
    }
}

/// What an operation is, as far as its common answers go.
struct Traits {
    needs_token: bool,
    has_parameters: bool,
    has_query: bool,
    has_body: bool,
}

impl Traits {
    fn of(operation: &Operation) -> Self {
        let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
        let has_parameters = operation.parameters.iter().flatten().any(|parameter| {
            matches!(parameter, RefOr::T(p) if matches!(
                p.parameter_in,
                ParameterIn::Path | ParameterIn::Query | ParameterIn::Header
            ))
        });
        let has_query = operation.parameters.iter().flatten().any(|parameter| {
            matches!(parameter, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query))
        });
        Self {
            needs_token: operation
                .security
                .iter()
                .flatten()
                .any(|requirement| *requirement == bearer),
            has_parameters,
            has_query,
            has_body: operation.request_body.is_some(),
        }
    }

    /// The common error answers of such an operation, with their default descriptions.
    fn common_errors(&self) -> Vec<(u16, &'static str)> {
        let mut errors = Vec::new();
        if self.has_body {
            errors.push((
                400,
                "Malformed request: the body is not JSON, or a parameter or header cannot be read",
            ));
            errors.push((413, "The body is larger than the server's limit"));
            errors.push((415, "The body is not sent as application/json"));
            errors.push((
                422,
                "The body is JSON of the wrong shape or with invalid values; `errors` names every field",
            ));
        } else if self.has_parameters {
            errors.push((
                400,
                "A path id, query parameter or header is malformed or unknown; `errors` names it",
            ));
            if self.has_query {
                errors.push((
                    422,
                    "A query parameter's name or value holds a control character; `errors` names it",
                ));
            }
        }
        errors.push(if self.needs_token {
            (
                401,
                "Log in first: the bearer token is missing, invalid or its session has ended",
            )
        } else {
            (
                401,
                "An Authorization header was sent but is not a valid bearer token",
            )
        });
        errors.push((
            503,
            "Temporarily unavailable (the database, or the request took too long); retry later",
        ));
        errors
    }
}

/// A fallback description for an error status declared without one.
fn default_description(status: &str) -> &'static str {
    match status {
        "400" => "The request is malformed",
        "401" => "Authentication required",
        "402" => "Payment declined",
        "403" => "The caller's role may not do this",
        "404" => "Not found, or not visible to this caller",
        "409" => "Conflict with the current state",
        "412" => "The resource changed since it was read",
        "413" => "The body is too large",
        "415" => "The body must be JSON",
        "422" => "The request is not valid; `errors` names every field",
        "428" => "A precondition header is required",
        "429" => "Too many requests; wait as Retry-After says",
        "502" => "An upstream provider failed",
        "503" => "Temporarily unavailable; retry later",
        _ => "Error",
    }
}

/// The problem+json content every error response carries.
fn problem_content() -> RefOr<Content> {
    RefOr::T(Content::new(Some(Ref::from_schema_name("Problem"))))
}

/// Adds the common answers to every operation and gives every error response its problem+json
/// content and a description. Called on the assembled document, after every route is merged.
pub fn complete(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation);
        }
    }
    declare_read_after(openapi);
}

/// The reads a read standby may serve (the store's stale-tolerant reads), by path suffix.
const STANDBY_READS: [&str; 4] = [
    "/shops",
    "/shops/{shop_id}/menu",
    "/orders",
    "/admin/reports/daily",
];

/// Declares the `Brigade-Read-After` fence (see `crate::read_after`): a request header of the
/// reads a standby may serve, and a response header of every write's success. Both only act
/// when the replica has a read standby (`storage.read_url`); without one the header is
/// ignored and never sent.
fn declare_read_after(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    let pattern = "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$";
    let lsn_schema = || {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .build(),
        ))
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        if let Some(get) = item.get.as_mut()
            && STANDBY_READS.iter().any(|read| path.ends_with(read))
        {
            let parameter = ParameterBuilder::new()
                .name("Brigade-Read-After")
                .parameter_in(ParameterIn::Header)
                .required(utoipa::openapi::Required::False)
                .schema(Some(lsn_schema()))
                .description(Some(
                    "The fence of this client's last write (from a write's `Brigade-Read-After`): \
                     the read is served by a standby only once it has replayed past it, else by \
                     the primary. A `brigade_read_after` cookie does the same for browsers.",
                ))
                .build();
            get.parameters
                .get_or_insert_with(Vec::new)
                .push(RefOr::T(parameter));
        }
        let writes = [
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in writes.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if status.starts_with('2') {
                    let header = HeaderBuilder::new().schema(Some(lsn_schema())).description(Some(
                        "With a read standby: the primary's WAL position after this write. Send it \
                         back on reads to see the write at once (also set as the \
                         `brigade_read_after` cookie).",
                    ));
                    response
                        .headers
                        .insert("Brigade-Read-After".to_owned(), RefOr::T(header.build()));
                }
            }
        }
    }
}

fn complete_operation(operation: &mut Operation) {
    let traits = Traits::of(operation);
    let responses = &mut operation.responses.responses;
    for (status, description) in traits.common_errors() {
        let response = responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
        if let RefOr::T(response) = response {
            add_common_headers(status, response);
        }
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && !response.content.contains_key(PROBLEM_JSON) {
            response
                .content
                .insert(PROBLEM_JSON.to_owned(), problem_content());
        }
        if response.description.is_empty() {
            response.description = default_description(status).to_owned();
        }
    }
}

/// Headers that come with a common answer wherever it is given.
fn add_common_headers(status: u16, response: &mut Response) {
    if status == 401 {
        response
            .headers
            .entry("WWW-Authenticate".to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    HeaderBuilder::new()
                        .schema(Some(string_schema()))
                        .description(Some("`Bearer realm=\"brigade\"`"))
                        .build(),
                )
            });
    }
}

fn string_schema() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::String).build(),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The served document as JSON, with every operation as `(method path, operation)`.
    fn operations() -> (Value, Vec<(String, Value)>) {
        let document = serde_json::to_value(crate::openapi_document()).unwrap();
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations.push((format!("{method} {path}"), operation.clone()));
            }
        }
        (document, operations)
    }

    #[test]
    fn the_read_after_fence_is_declared_on_standby_reads_and_write_answers() {
        let (_, operations) = operations();
        let find = |name: &str| {
            operations
                .iter()
                .find(|(key, _)| key == name)
                .unwrap_or_else(|| panic!("no operation {name}"))
                .1
                .clone()
        };
        let has_parameter = |operation: &Value| {
            operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "Brigade-Read-After" && p["in"] == "header")
        };
        for read in [
            "get /api/v1/shops",
            "get /api/v1/shops/{shop_id}/menu",
            "get /api/v1/orders",
            "get /api/v1/admin/reports/daily",
        ] {
            assert!(has_parameter(&find(read)), "{read}");
        }
        assert!(!has_parameter(&find("get /api/v1/orders/{order_id}")));
        let placed = find("post /api/v1/orders");
        assert!(
            placed["responses"]["201"]["headers"]["Brigade-Read-After"]["schema"]["pattern"]
                .is_string()
        );
        assert!(placed["responses"]["422"]["headers"]["Brigade-Read-After"].is_null());
    }

    fn declares(operation: &Value, status: &str) -> bool {
        operation["responses"].get(status).is_some()
    }

    #[test]
    fn every_response_is_described_and_every_error_is_a_problem() {
        let (_, operations) = operations();
        assert!(operations.len() >= 30, "{} operations", operations.len());
        for (name, operation) in &operations {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(!description.is_empty(), "{name} {status}: no description");
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{name} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_operation_declares_the_answers_its_traits_imply() {
        let (_, operations) = operations();
        let mut protected = 0;
        for (name, operation) in &operations {
            let needs_token = operation["security"]
                .as_array()
                .is_some_and(|requirements| requirements.iter().any(|r| r.get("bearer").is_some()));
            protected += usize::from(needs_token);
            assert!(declares(operation, "401"), "{name}: 401");
            assert!(declares(operation, "503"), "{name}: 503");
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(declares(operation, status), "{name}: {status}");
                }
            }
            let has_path_id = operation["parameters"]
                .as_array()
                .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "path"));
            if has_path_id {
                assert!(declares(operation, "400"), "{name}: 400");
            }
            let has_query = operation["parameters"]
                .as_array()
                .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "query"));
            if has_query {
                assert!(declares(operation, "422"), "{name}: 422");
            }
            let roles = operation["description"].as_str().unwrap_or_default();
            if roles.contains("Roles: admin.") {
                assert!(declares(operation, "403"), "{name}: 403");
            }
        }
        assert!(protected >= 20, "{protected} operations need a token");
        let place = &operations
            .iter()
            .find(|(name, _)| name == "post /api/v1/orders")
            .unwrap()
            .1;
        for status in ["402", "403", "409", "502", "503"] {
            assert!(declares(place, status), "post /api/v1/orders: {status}");
        }
    }

    /// The schema's limits are the validation's limits: a drift between the literal in a
    /// `#[schema]` attribute and the constant the validation uses fails here.
    #[test]
    fn request_schemas_carry_the_limits_the_handlers_enforce() {
        use brigade_domain::{account, catalogue, order, shop};
        let (document, _) = operations();
        let schemas = &document["components"]["schemas"];
        let field = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
        let number = |value: &Value| value.as_f64().unwrap_or(f64::NAN);
        assert_eq!(
            number(&field("NewOrder", "items")["minItems"]),
            1.0,
            "NewOrder.items"
        );
        assert_eq!(
            number(&field("NewOrder", "items")["maxItems"]),
            order::MAX_LINES as f64
        );
        let quantity = field("NewOrderLine", "quantity");
        assert_eq!(number(&quantity["minimum"]), 1.0);
        assert_eq!(number(&quantity["maximum"]), order::MAX_QUANTITY as f64);
        for credentials in ["Credentials", "NewStaffAccount"] {
            let password = field(credentials, "password");
            assert_eq!(number(&password["minLength"]), account::MIN_PASSWORD as f64);
            assert_eq!(number(&password["maxLength"]), account::MAX_PASSWORD as f64);
            let email = field(credentials, "email");
            assert_eq!(email["format"], "email");
            assert_eq!(number(&email["maxLength"]), account::MAX_EMAIL as f64);
        }
        assert_eq!(
            number(&field("NewItem", "price_minor")["maximum"]),
            catalogue::MAX_PRICE_MINOR as f64
        );
        assert_eq!(
            number(&field("NewItem", "name")["maxLength"]),
            catalogue::MAX_ITEM_NAME as f64
        );
        assert_eq!(
            number(&field("NewItem", "description")["maxLength"]),
            catalogue::MAX_DESCRIPTION as f64
        );
        for (schema, slug) in [
            ("NewItem", "sku"),
            ("NewItem", "category"),
            ("NewShop", "region"),
        ] {
            assert_eq!(
                field(schema, slug)["pattern"],
                brigade_domain::validate::SLUG_PATTERN,
                "{schema}.{slug}"
            );
        }
        assert_eq!(
            field("NewItem", "currency")["pattern"],
            brigade_domain::validate::CURRENCY_PATTERN
        );
        for (schema, max) in [
            ("NewShop", shop::MAX_SHOP_NAME),
            ("ShopPatch", shop::MAX_SHOP_NAME),
            ("NewStation", shop::MAX_STATION_NAME),
        ] {
            let name = field(schema, "name");
            assert_eq!(number(&name["maxLength"]), max as f64, "{schema}.name");
            assert_eq!(name["pattern"], brigade_domain::validate::TEXT_PATTERN);
        }
        assert_eq!(
            number(&field("NewStation", "capacity")["maximum"]),
            shop::MAX_CAPACITY as f64
        );
        assert_eq!(number(&schemas["ShopPatch"]["minProperties"]), 1.0);
        {
            use crate::routes::client_errors as reports;
            let page = field("ClientErrorReport", "page");
            assert_eq!(number(&page["maxLength"]), reports::MAX_PAGE_CHARS as f64);
            assert_eq!(page["pattern"], reports::PAGE_PATTERN);
            let frames = field("ClientErrorReport", "frames");
            assert_eq!(
                number(&frames["maxItems"]),
                reports::MAX_REPORT_FRAMES as f64
            );
            let trace = field("ClientErrorReport", "trace_id");
            assert_eq!(trace["pattern"], reports::TRACE_ID_PATTERN, "{trace}");
        }
        let location = &schemas["GeoPoint"]["properties"];
        assert_eq!(number(&location["lat"]["maximum"]), 90.0);
        assert_eq!(number(&location["lon"]["minimum"]), -180.0);
        let list = &document["paths"]["/api/v1/orders"]["get"]["parameters"];
        let limit = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(
            number(&limit["schema"]["maximum"]),
            f64::from(crate::routes::page::MAX_PAGE)
        );
    }
}
