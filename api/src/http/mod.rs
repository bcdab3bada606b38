//! The HTTP control plane: resource modules (each owns its routes, DTOs and OpenAPI
//! fragment), authentication, problem bodies, and the assembly of the actix `App` and the
//! OpenAPI document from the same route table.

pub mod applications;
pub mod auth;
pub mod calls;
pub mod health;
pub mod json;
pub mod numbers;
pub mod pagination;
pub mod problem;
pub mod psip;
pub mod trunks;

use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, web};
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
    tags(
        (name = "applications", description = "Applications and their voice webhooks (HTTP Basic)"),
        (name = "psip", description = "Programmable SIP domains and digest users (HTTP Basic)"),
        (name = "numbers", description = "Numbers routed to applications or SIP (HTTP Basic)"),
        (name = "trunks", description = "Outbound SIP trunks (HTTP Basic)"),
        (name = "calls", description = "Voice API (JWT signed RS256 by the application)"),
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

/// The route table, shared by the server and by `voxbridge openapi`.
fn routes<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.service(health::health)
        .service(health::ready)
        .service(scope::scope("/v2/applications").wrap(from_fn(auth::require_basic)).configure(applications::routes))
        .service(scope::scope("/v1/psip").wrap(from_fn(auth::require_basic)).configure(psip::routes))
        .service(scope::scope("/v1/numbers").wrap(from_fn(auth::require_basic)).configure(numbers::routes))
        .service(scope::scope("/v1/trunks").wrap(from_fn(auth::require_basic)).configure(trunks::routes))
        .service(scope::scope("/v1/calls").wrap(from_fn(auth::require_jwt)).configure(calls::routes))
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
        .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::invalid("query", e.to_string()).into()))
        .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::invalid("path", e.to_string()).into()))
        .route("/openapi.json", web::get().to(serve_openapi))
        .route("/metrics", web::get().to(health::metrics_text))
        .default_service(web::to(not_found))
        .wrap(from_fn(health::observe))
}

async fn serve_openapi(doc: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(doc.get_ref().clone())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())))
}
