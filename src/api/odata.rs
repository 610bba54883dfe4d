//! `$filter` and `$orderby` as request parameters: parsed with [`crate::domain::odata`], refused
//! with a CloudError that points at the position.

use crate::domain::odata::{
    CompareOp, Expr, Literal, OrderBy, Property, Value, parse_filter, parse_orderby,
};
use crate::error::ApiError;
use crate::store::filter::FilterError;

// ---------------------------------------------------------------------------------------------
// HTTP

/// A request's `$filter` and `$orderby`, parsed; an empty parameter counts as absent.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    pub filter: Option<Expr>,
    pub orderby: Option<OrderBy>,
}

fn given(text: Option<&str>) -> Option<&str> {
    text.filter(|s| !s.trim().is_empty())
}

impl QueryOptions {
    pub fn parse(filter: Option<&str>, orderby: Option<&str>) -> Result<Self, ApiError> {
        let filter = given(filter)
            .map(parse_filter)
            .transpose()
            .map_err(|e| invalid_filter(&e.message))?;
        let orderby = given(orderby)
            .map(parse_orderby)
            .transpose()
            .map_err(|e| invalid_orderby(&e.message))?;
        Ok(Self { filter, orderby })
    }

    /// `extra` (a condition the route adds from its own parameters) and the `$filter`.
    pub fn and(mut self, extra: Option<Expr>) -> Self {
        self.filter = match (extra, self.filter) {
            (Some(a), Some(b)) => Some(Expr::And(Box::new(a), Box::new(b))),
            (a, b) => a.or(b),
        };
        self
    }
}

/// An equality test on `path`, as a route's own query parameter means it.
pub fn equals(path: &str, value: &str) -> Expr {
    Expr::Compare {
        property: Property {
            path: path.to_owned(),
            position: 0,
        },
        op: CompareOp::Eq,
        value: Value {
            literal: Literal::String(value.to_owned()),
            position: 0,
        },
    }
}

fn invalid_filter(message: &str) -> ApiError {
    ApiError::BadRequest {
        code: "InvalidFilter",
        message: format!("The $filter is not valid: {message}."),
        target: Some("$filter".to_owned()),
    }
}

fn invalid_orderby(message: &str) -> ApiError {
    ApiError::BadRequest {
        code: "InvalidOrderBy",
        message: format!("The $orderby is not valid: {message}."),
        target: Some("$orderby".to_owned()),
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        match e {
            FilterError::Filter { message, .. } => invalid_filter(&message),
            FilterError::OrderBy { message, .. } => invalid_orderby(&message),
            FilterError::SkipToken => ApiError::BadRequest {
                code: "InvalidSkipToken",
                message: "The $skipToken was issued for another $filter or $orderby (or not by this service); start again without it."
                    .to_owned(),
                target: Some("$skipToken".to_owned()),
            },
        }
    }
}
