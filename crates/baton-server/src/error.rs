//! Errors as HTTP answers: `{"error": "..."}` with a status. Only the HTTP
//! layer knows status codes; what the runner and the core report maps here.

use crate::runner::RunnerError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::control::ControlError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        let status = match &e {
            ControlError::NoTask { .. } => StatusCode::NOT_FOUND,
            ControlError::NotLive { .. } => StatusCode::CONFLICT,
            ControlError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ControlError::Refused(_) => StatusCode::BAD_REQUEST,
            ControlError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<RunnerError> for ApiError {
    fn from(e: RunnerError) -> ApiError {
        match e {
            RunnerError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            RunnerError::NoRun(m) => ApiError::not_found(m),
            RunnerError::Busy(m) => ApiError::new(StatusCode::CONFLICT, m),
            RunnerError::Control(c) => c.into(),
            RunnerError::Internal(m) => ApiError::internal(m),
        }
    }
}
