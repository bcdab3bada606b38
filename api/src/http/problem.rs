//! Every HTTP error as a problem body (RFC 9457, Vonage's shape): `type`, `title`, `detail`,
//! `instance`, and `invalid_parameters` for validation failures. This is the one place where
//! errors meet the wire.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use domains::problem::InvalidParameter;
use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "https://voxbridge.dev/api-errors#validation")]
    pub kind: String,
    #[schema(example = "Invalid request parameters")]
    pub title: String,
    pub detail: String,
    /// Identifies this occurrence; the same value is logged.
    pub instance: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<InvalidParam>)]
    pub invalid_parameters: Vec<InvalidParameter>,
}

/// One refused parameter (field name or JSON path) and why.
#[derive(Serialize, ToSchema)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request parameters")]
    Validation(Vec<InvalidParameter>),
    #[error("{detail}")]
    BadRequest { detail: String, invalid: Vec<InvalidParameter> },
    #[error("{0}")]
    Unauthorized(String, Challenge),
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method; `Allow` lists the methods it has.
    #[error("{method} is not allowed here; allowed: {}", AllowList(.allow))]
    MethodNotAllowed { method: String, allow: Vec<Method> },
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// Over a rate or concurrency budget; `Retry-After` says when to try again.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Which `WWW-Authenticate` challenge a 401 carries.
#[derive(Debug, Clone, Copy)]
pub enum Challenge {
    Basic,
    Bearer,
}

impl std::fmt::Display for InvalidParameterList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.name, p.reason)?;
        }
        Ok(())
    }
}

struct InvalidParameterList<'a>(&'a [InvalidParameter]);

struct AllowList<'a>(&'a [Method]);

impl std::fmt::Display for AllowList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(m.as_str())?;
        }
        Ok(())
    }
}

impl ApiError {
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} was not found"))
    }

    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Validation(vec![InvalidParameter::new(name, reason)])
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Validation(_) => ("validation", "Invalid request parameters"),
            ApiError::BadRequest { .. } => ("bad-request", "Malformed request"),
            ApiError::Unauthorized(..) => ("unauthorized", "Invalid credentials supplied"),
            ApiError::NotFound(_) => ("not-found", "Resource not found"),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict(_) => ("conflict", "Conflict with the current state"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::TooManyRequests(_) => ("too-many-requests", "Too many requests"),
            ApiError::Internal(_) => ("internal", "Internal error"),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        let instance = uuid::Uuid::new_v4().to_string();
        let (detail, invalid_parameters) = match self {
            ApiError::Validation(list) => {
                (format!("The request failed validation: {}", InvalidParameterList(list)), list.clone())
            }
            ApiError::BadRequest { detail, invalid } => (detail.clone(), invalid.clone()),
            // Internal details go to the log under the instance id, never to the client.
            ApiError::Internal(_) => ("An internal error occurred; it was logged.".into(), vec![]),
            other => (other.to_string(), vec![]),
        };
        Problem {
            kind: format!("https://voxbridge.dev/api-errors#{slug}"),
            title: title.into(),
            detail,
            instance,
            invalid_parameters,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.to_problem();
        match self {
            ApiError::Internal(detail) => {
                tracing::error!(instance = %problem.instance, %detail, "internal error")
            }
            ApiError::Unauthorized(why, _) => {
                tracing::warn!(instance = %problem.instance, reason = %why, "authentication refused")
            }
            _ => {
                tracing::debug!(instance = %problem.instance, detail = %problem.detail, "request refused")
            }
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        resp.insert_header(("x-voxbridge-trace-id", problem.instance.clone()));
        if let ApiError::Unauthorized(_, challenge) = self {
            let value = match challenge {
                Challenge::Basic => "Basic realm=\"voxbridge\", charset=\"UTF-8\"",
                Challenge::Bearer => "Bearer realm=\"voxbridge\"",
            };
            resp.insert_header((header::WWW_AUTHENTICATE, value));
        }
        if let ApiError::TooManyRequests(_) = self {
            resp.insert_header((header::RETRY_AFTER, "1"));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            resp.insert_header((header::ALLOW, AllowList(allow).to_string()));
        }
        resp.json(problem)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        // An update of a row that a concurrent request deleted after it was read.
        if matches!(e, sea_orm::DbErr::RecordNotUpdated | sea_orm::DbErr::RecordNotFound(_)) {
            return ApiError::NotFound("the resource was deleted meanwhile".into());
        }
        match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                ApiError::Conflict("a resource with the same identifier already exists".into())
            }
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => foreign_key_conflict(),
            // SQLite reports some foreign-key failures with an extended code sea-orm does not
            // classify.
            _ if e.to_string().contains("FOREIGN KEY constraint failed") => foreign_key_conflict(),
            _ => ApiError::Internal(e.to_string()),
        }
    }
}

fn foreign_key_conflict() -> ApiError {
    ApiError::Conflict("the resource is referenced by, or references, another resource".into())
}

impl From<Vec<InvalidParameter>> for ApiError {
    fn from(v: Vec<InvalidParameter>) -> Self {
        ApiError::Validation(v)
    }
}

// ---- The error responses as the OpenAPI document names them (components/responses). ----

/// Invalid parameters (`invalid_parameters` names each refused body field or query
/// parameter), or a body that is not valid JSON.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct BadRequest(pub Problem);

/// Missing or wrong credentials.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "The scheme to authenticate with: Basic or Bearer"))
)]
pub struct Unauthorized(pub Problem);

/// The resource does not exist.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotFound(pub Problem);

/// The request body is larger than 64 KiB.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct PayloadTooLarge(pub Problem);

/// The request body is not declared `Content-Type: application/json`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub Problem);

/// Over the outbound call budget (calls per second per application, or calls at once).
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "Seconds to wait before trying again"))
)]
pub struct TooManyRequests(pub Problem);

/// An unexpected failure (such as the database); the problem's `instance` is logged.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct InternalError(pub Problem);
