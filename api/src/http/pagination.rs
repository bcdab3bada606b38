//! Page-based listing as the Application API does it (`page_size` 1–100, `page` from 1).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::ApiError;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 10).
    pub page_size: Option<u64>,
    /// Page number, from 1 (default 1).
    pub page: Option<u64>,
}

impl PageQuery {
    /// (page_size, page) after validation.
    pub fn resolve(&self) -> Result<(u64, u64), ApiError> {
        let size = self.page_size.unwrap_or(10);
        let page = self.page.unwrap_or(1);
        let mut problems = domains::problem::Problems::new();
        if !(1..=100).contains(&size) {
            problems.push("page_size", "must be 1 to 100");
        }
        if page < 1 {
            problems.push("page", "must be 1 or more");
        }
        problems.finish((size, page)).map_err(ApiError::Validation)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Href {
    pub href: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageLinks {
    #[serde(rename = "self")]
    pub this: Href,
    pub first: Href,
    pub last: Href,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Href>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<Href>,
}

impl PageLinks {
    pub fn new(base: &str, size: u64, page: u64, total_pages: u64) -> Self {
        let href = |p: u64| Href { href: format!("{base}?page_size={size}&page={p}") };
        let last = total_pages.max(1);
        PageLinks {
            this: href(page),
            first: href(1),
            last: href(last),
            next: (page < last).then(|| href(page + 1)),
            prev: (page > 1).then(|| href(page - 1)),
        }
    }
}

pub fn total_pages(total_items: u64, size: u64) -> u64 {
    total_items.div_ceil(size)
}
