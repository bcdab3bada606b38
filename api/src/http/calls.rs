//! `/v1/calls` (Voice API, JWT): the listing exists now so the JWT scheme is exercised; calls
//! themselves arrive with the SIP edge.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, get};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::AuthenticatedApplication;
use super::pagination::Href;
use super::problem::{ApiError, Problem};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallListLinks {
    #[serde(rename = "self")]
    pub this: Href,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallsEmbedded {
    pub calls: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallList {
    pub count: u64,
    pub page_size: u64,
    pub record_index: u64,
    pub _links: CallListLinks,
    pub _embedded: CallsEmbedded,
}

#[utoipa::path(
    operation_id = "listCalls",
    tag = "calls",
    responses(
        (status = 200, description = "Calls of the authenticated application (HAL)", body = CallList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
#[get("")]
async fn list(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let app = req
        .extensions()
        .get::<AuthenticatedApplication>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("JWT middleware did not run".into()))?;
    tracing::debug!(application_id = %app.id, "listing calls");
    Ok(HttpResponse::Ok().json(CallList {
        count: 0,
        page_size: 10,
        record_index: 0,
        _links: CallListLinks { this: Href { href: "/v1/calls?page_size=10&record_index=0".into() } },
        _embedded: CallsEmbedded { calls: vec![] },
    }))
}
