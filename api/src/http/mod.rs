//! The HTTP control plane: resource modules (each owns its routes, DTOs and OpenAPI
//! fragment), authentication, problem bodies, and the assembly of the actix `App` and the
//! OpenAPI document from the same route table.

pub mod account;
pub mod applications;
pub mod auth;
pub mod calls;
pub mod files;
pub mod health;
pub mod json;
pub mod numbers;
pub mod outbound;
pub mod pagination;
pub mod params;
pub mod problem;
pub mod psip;
pub mod registrations;
pub mod schemas;
pub mod trunks;
pub mod twilio;

use std::sync::OnceLock;

use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, web};
use domains::problem::InvalidParameter;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{AppExt, UtoipaApp, scope};

use problem::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voxbridge",
        description = "Self-hostable programmable voice: Vonage-compatible Voice, Application and Programmable SIP APIs.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(responses(
        problem::BadRequest,
        problem::Unauthorized,
        problem::NotFound,
        problem::PayloadTooLarge,
        problem::UnsupportedMediaType,
        problem::TooManyRequests,
        problem::InternalError
    )),
    tags(
        (name = "applications", description = "Applications and their voice webhooks (HTTP Basic)"),
        (name = "psip", description = "Programmable SIP domains and digest users (HTTP Basic)"),
        (name = "numbers", description = "Numbers routed to applications or SIP (HTTP Basic)"),
        (name = "trunks", description = "Outbound SIP trunks (HTTP Basic)"),
        (name = "account", description = "The account's trunk identity and default application (HTTP Basic)"),
        (name = "twilio", description = "Twilio-compatible calls API (HTTP Basic AccountSid:AuthToken)"),
        (name = "calls", description = "Voice API (JWT signed RS256 by the application)"),
        (name = "files", description = "Recordings, downloaded by their application (JWT)"),
        (name = "operations", description = "Health and readiness")
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("basicAuth", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("RS256 JWT signed with the application's private key; claims application_id, iat, jti, optional exp/nbf"))
                    .build(),
            ),
        );
    }
}

/// The route table, shared by the server and by `voxbridge openapi`. Provisioning scopes take
/// the account's Basic credentials (outermost, so an unauthenticated request invalidates
/// nothing), and their writes invalidate the cache the SIP edge reads; the Voice API steers
/// calls and leaves it alone.
fn routes<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.service(health::health)
        .service(health::ready)
        .service(
            scope::scope("/v2/applications")
                .wrap(from_fn(invalidate_provisioning))
                .wrap(from_fn(auth::require_basic))
                .configure(applications::routes),
        )
        .service(
            scope::scope("/v1/psip")
                .wrap(from_fn(invalidate_provisioning))
                .wrap(from_fn(auth::require_basic))
                .configure(psip::routes),
        )
        .service(
            scope::scope("/v1/numbers")
                .wrap(from_fn(invalidate_provisioning))
                .wrap(from_fn(auth::require_basic))
                .configure(numbers::routes),
        )
        .service(scope::scope("/v1/registrations").wrap(from_fn(auth::require_basic)).configure(registrations::routes))
        .service(
            scope::scope("/v1/trunks")
                .wrap(from_fn(invalidate_provisioning))
                .wrap(from_fn(auth::require_basic))
                .configure(trunks::routes),
        )
        .service(
            scope::scope("/v1/account")
                .wrap(from_fn(invalidate_provisioning))
                .wrap(from_fn(auth::require_basic))
                .configure(account::routes),
        )
        .service(
            scope::scope("/2010-04-01/Accounts/{account_sid}")
                .wrap(from_fn(twilio::require_twilio_basic))
                .configure(twilio::routes),
        )
        .service(scope::scope("/v1/calls").wrap(from_fn(auth::require_jwt)).configure(calls::routes))
        .service(scope::scope("/v1/files").wrap(from_fn(auth::require_jwt)).configure(files::routes))
}

/// The OpenAPI document, derived from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = routes(App::new().into_utoipa_app().openapi(ApiDoc::openapi())).split_for_parts();
    doc
}

/// What `voxbridge openapi` prints and `openapi.yaml` holds.
pub fn openapi_yaml() -> Result<String, String> {
    openapi().to_yaml().map_err(|e| e.to_string())
}

/// Builds the actix application for one worker.
pub fn app(
    state: web::Data<crate::state::AppState>,
    openapi_json: web::Data<String>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, _) = routes(App::new().into_utoipa_app()).split_for_parts();
    app.app_data(state)
        .app_data(openapi_json)
        .app_data(web::QueryConfig::default().error_handler(params::query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(
            web::scope(twilio::SIGNALWIRE_SCOPE)
                .wrap(from_fn(twilio::require_twilio_basic))
                .configure(twilio::signalwire_routes),
        )
        .route("/openapi.json", web::get().to(serve_openapi))
        .route("/metrics", web::get().to(health::metrics_text))
        .default_service(web::to(not_found))
        .wrap(from_fn(catch_panic))
        .wrap(from_fn(health::observe))
}

/// Every provisioning write (any method but GET/HEAD) invalidates the provisioning cache the
/// SIP edge reads, so the next call sees it: one place rather than a call in every handler.
async fn invalidate_provisioning(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let state = req.app_data::<web::Data<crate::state::AppState>>().cloned();
    let res = next.call(req).await;
    if writes && let Some(state) = state {
        state.provisioning.invalidate();
    }
    res
}

/// A handler that panics (a bug: input never should make one) answers `500` with a problem body
/// instead of taking the connection and the worker's other requests down with it.
async fn catch_panic(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use futures_util::FutureExt;
    // Only strings are kept: a second handle on the request would stop actix reusing it.
    let what = format!("{} {}", req.method(), req.path());
    match std::panic::AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(res) => res,
        Err(_) => {
            metrics::counter!("voxbridge_http_handler_panics_total").increment(1);
            // An error here is rendered as the problem body by actix (ApiError: ResponseError).
            Err(ApiError::Internal(format!("handler panicked on {what}")).into())
        }
    }
}

async fn serve_openapi(doc: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(doc.get_ref().clone())
}

/// A path segment that does not decode (say `%FF`), named after the route's parameter.
fn path_error(err: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    let names: Vec<&str> = req.match_info().iter().map(|(name, _)| name).collect();
    let name = match names.as_slice() {
        [one] => (*one).to_owned(),
        _ => "path".to_owned(),
    };
    ApiError::Validation(vec![InvalidParameter::new(name, err.to_string())]).into()
}

/// A known path with another method is 405 with `Allow`; anything else is 404.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    match allowed_methods(req.path()) {
        Some(allow) if !allow.contains(req.method()) => {
            Err(ApiError::MethodNotAllowed { method: req.method().to_string(), allow })
        }
        _ => Err(ApiError::NotFound(format!("no route for {} {}", req.method(), req.path()))),
    }
}

/// One route of the table: its path segments (`None` for a `{parameter}`) and methods.
struct Route {
    segments: Vec<Option<String>>,
    methods: Vec<Method>,
}

/// The routes of the OpenAPI document plus the undocumented ones, read once.
fn route_table() -> &'static [Route] {
    static TABLE: OnceLock<Vec<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let doc = openapi();
        let mut table: Vec<Route> = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let candidates = [
                    (Method::GET, item.get.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::HEAD, item.head.is_some()),
                    (Method::OPTIONS, item.options.is_some()),
                    (Method::TRACE, item.trace.is_some()),
                ];
                Route {
                    segments: template_segments(path),
                    methods: candidates.into_iter().filter_map(|(m, has)| has.then_some(m)).collect(),
                }
            })
            .collect();
        for path in ["/openapi.json", "/metrics"] {
            table.push(Route { segments: template_segments(path), methods: vec![Method::GET] });
        }
        table
    })
}

fn template_segments(path: &str) -> Vec<Option<String>> {
    path.split('/').map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned())).collect()
}

/// The methods of the route whose template matches `path`, if any does.
fn allowed_methods(path: &str) -> Option<Vec<Method>> {
    let segments: Vec<&str> = path.split('/').collect();
    let matches = |route: &Route| {
        route.segments.len() == segments.len()
            && route.segments.iter().zip(&segments).all(|(t, s)| match t {
                Some(literal) => literal == s,
                None => !s.is_empty(),
            })
    };
    let methods: Vec<Method> = route_table().iter().filter(|r| matches(r)).flat_map(|r| r.methods.clone()).collect();
    (!methods.is_empty()).then_some(methods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_and_the_worker_goes_on() {
        async fn boom() -> HttpResponse {
            panic!("a bug")
        }
        async fn fine() -> HttpResponse {
            HttpResponse::Ok().finish()
        }
        let app = actix_web::test::init_service(
            App::new()
                .route("/boom", web::get().to(boom))
                .route("/fine", web::get().to(fine))
                .wrap(from_fn(catch_panic)),
        )
        .await;
        // The server renders a middleware's error as its response; the test service hands it back.
        let req = actix_web::test::TestRequest::get().uri("/boom").to_request();
        let err = actix_web::test::try_call_service(&app, req).await.err().expect("the panic became an error");
        let res = err.error_response();
        assert_eq!(res.status(), 500);
        let bytes = actix_web::body::to_bytes(res.into_body()).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(body["type"].is_string() && body["title"].is_string(), "{body}");
        let req = actix_web::test::TestRequest::get().uri("/fine").to_request();
        assert_eq!(actix_web::test::call_service(&app, req).await.status(), 200);
    }

    #[test]
    fn allowed_methods_follow_the_route_table() {
        assert_eq!(allowed_methods("/v1/psip"), Some(vec![Method::GET, Method::POST]));
        assert_eq!(allowed_methods("/v1/psip/acme/users/bob"), Some(vec![Method::GET, Method::PUT, Method::DELETE]));
        assert_eq!(allowed_methods("/health"), Some(vec![Method::GET]));
        assert_eq!(allowed_methods("/metrics"), Some(vec![Method::GET]));
        assert_eq!(allowed_methods("/v1/psip/"), None);
        assert_eq!(allowed_methods("/v1/nothing"), None);
    }
}
