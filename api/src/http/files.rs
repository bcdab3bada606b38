//! `/v1/files/{id}` (JWT): recordings, downloaded by the application that made them. Files are
//! kept per application (see `domains::recordings`), so another application's recording is as
//! unknown as one that never was.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::AuthenticatedApplication;
use super::problem::{ApiError, InternalError, NotFound, Unauthorized};
use crate::state::AppState;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(download);
}

/// What a recording's extension is served as.
const TYPES: [(&str, &str); 2] = [("mp3", "audio/mpeg"), ("wav", "audio/wav")];

#[utoipa::path(
    operation_id = "getRecording",
    tag = "files",
    params(("id" = String, Path, description = "The recording's uuid (`recording_uuid` of the record event), or its sid (`RE…`, TwiML's `RecordingSid`)")),
    responses(
        (status = 200, description = "The recording", content_type = "audio/mpeg", body = Vec<u8>),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("bearerAuth" = []))
)]
#[get("/{id}")]
async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let app = req
        .extensions()
        .get::<AuthenticatedApplication>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("JWT middleware did not run".into()))?;
    // A TwiML `RecordingUrl` names the recording by its sid (`RE…`).
    let id = domains::twiml::sid::uuid(domains::twiml::sid::RECORDING, &id).unwrap_or_else(|| id.into_inner());
    let missing = || ApiError::not_found(format_args!("recording {id}"));
    if !domains::recordings::is_plain_name(&id) || !domains::recordings::is_plain_name(&app.id) {
        return Err(missing());
    }
    let dir = state.config.recordings_dir().join(&app.id);
    for (extension, content_type) in TYPES {
        let path = dir.join(format!("{id}.{extension}"));
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                return Ok(HttpResponse::Ok()
                    .content_type(content_type)
                    .insert_header(("Content-Disposition", format!("attachment; filename=\"{id}.{extension}\"")))
                    .body(bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ApiError::Internal(format!("{}: {e}", path.display()))),
        }
    }
    Err(missing())
}
