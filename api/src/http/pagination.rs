//! Page-based listing as the Application API does it (`page_size` 1–100, `page` 1–10⁷).

use domains::problem::Problems;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params;
use super::problem::ApiError;

pub const DEFAULT_PAGE_SIZE: u64 = 10;
pub const MAX_PAGE_SIZE: u64 = 100;
/// The highest page number: with 100 items a page, no offset reaches 10⁹.
pub const MAX_PAGE: u64 = 10_000_000;

/// The values are kept as text and parsed by [`PageQuery::resolve`], which names the
/// parameter it refuses.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100, default = 10)]
    pub page_size: Option<String>,
    /// Page number, from 1.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 10000000, default = 1)]
    pub page: Option<String>,
}

/// A validated page: its size, its number and the offset of its first item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub size: u64,
    pub number: u64,
    pub offset: u64,
}

impl PageQuery {
    pub fn resolve(&self) -> Result<Page, ApiError> {
        let mut problems = Problems::new();
        let size = params::integer(
            &mut problems,
            "page_size",
            self.page_size.as_deref(),
            1..=MAX_PAGE_SIZE,
            DEFAULT_PAGE_SIZE,
        );
        let number = params::integer(&mut problems, "page", self.page.as_deref(), 1..=MAX_PAGE, 1);
        // The bounds keep this far from overflow; checked all the same, since the database
        // layer panics on an offset beyond i64.
        let offset = number
            .checked_sub(1)
            .and_then(|n| n.checked_mul(size))
            .filter(|o| i64::try_from(*o).is_ok())
            .unwrap_or_else(|| {
                problems.push("page", "page × page_size is too large");
                0
            });
        problems.finish(Page { size, number, offset }).map_err(ApiError::Validation)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(page_size: Option<&str>, page: Option<&str>) -> PageQuery {
        PageQuery { page_size: page_size.map(str::to_owned), page: page.map(str::to_owned) }
    }

    #[test]
    fn bounds() {
        assert_eq!(query(None, None).resolve().unwrap(), Page { size: 10, number: 1, offset: 0 });
        assert_eq!(
            query(Some("100"), Some("10000000")).resolve().unwrap(),
            Page { size: 100, number: MAX_PAGE, offset: 999_999_900 }
        );
        for (size, page, name) in [
            (Some("0"), None, "page_size"),
            (Some("101"), None, "page_size"),
            (None, Some("0"), "page"),
            (None, Some("10000001"), "page"),
            (None, Some("9223372036854775807"), "page"),
            (None, Some("18446744073709551616"), "page"),
        ] {
            match query(size, page).resolve() {
                Err(ApiError::Validation(v)) => assert_eq!(v[0].name, name),
                other => panic!("{size:?} {page:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn documented_bounds_are_the_enforced_ones() {
        let params = <PageQuery as IntoParams>::into_params(|| None);
        let doc = serde_json::to_value(&params).unwrap();
        assert_eq!(doc[0]["schema"]["maximum"], MAX_PAGE_SIZE);
        assert_eq!(doc[0]["schema"]["default"], DEFAULT_PAGE_SIZE);
        assert_eq!(doc[1]["schema"]["maximum"], MAX_PAGE);
    }
}
