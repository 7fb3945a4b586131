//! Accounts and roles: who orders, who cooks, who delivers, who runs the place.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::validate::{Violation, Violations};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD: usize = 10;
/// Longest accepted password: long enough for pass phrases, short enough to bound hashing work.
pub const MAX_PASSWORD: usize = 128;
/// Longest accepted e-mail address (RFC 5321's limit on a path).
pub const MAX_EMAIL: usize = 254;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Orders food; sees only their own orders.
    Customer,
    /// Works one shop's kitchen.
    Staff,
    /// Delivers one shop's orders.
    Courier,
    /// Runs the place: shops, catalogue, accounts.
    Admin,
}

impl Role {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Staff => "staff",
            Self::Courier => "courier",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Customer, Self::Staff, Self::Courier, Self::Admin]
            .into_iter()
            .find(|role| role.as_str() == value)
    }

    /// Staff and couriers belong to one shop; customers and admins to none.
    pub fn needs_shop(self) -> bool {
        matches!(self, Self::Staff | Self::Courier)
    }
}

/// An account as the API shows it (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    /// Account id (UUID v7).
    pub id: Uuid,
    /// Login name, stored lower-case.
    pub email: String,
    /// What the account may do.
    pub role: Role,
    /// The shop of a staff member or courier.
    pub shop_id: Option<Uuid>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/accounts` (sign-up) and `POST /api/v1/sessions` (log-in).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// E-mail address: something before the `@`, a dot in the domain, no spaces; at most
    /// 254 characters. Compared case-insensitively.
    #[schema(format = Email, max_length = 254, pattern = r"^[^\s@]+@[^\s@.][^\s@]*\.[^\s@]+$")]
    pub email: String,
    /// Password, 10–128 characters.
    #[schema(format = Password, min_length = 10, max_length = 128)]
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &"***")
            .finish()
    }
}

impl Credentials {
    /// The e-mail address as stored: trimmed and lower-case, so logins are case-insensitive.
    pub fn normalised_email(&self) -> String {
        self.email.trim().to_lowercase()
    }

    /// Checks a sign-up: a plausible address and a password of sane length.
    pub fn validate_new(self) -> Result<Self, Vec<Violation>> {
        let mut v = Violations::new();
        let email = self.normalised_email();
        let plausible = email.len() <= MAX_EMAIL
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            })
            && !email.chars().any(char::is_whitespace);
        v.check(plausible, "email", "must be an e-mail address");
        let length = self.password.chars().count();
        v.check(
            (MIN_PASSWORD..=MAX_PASSWORD).contains(&length),
            "password",
            format!("must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        );
        v.finish(Self {
            email,
            password: self.password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_up_checks_address_and_password() {
        let ok = Credentials {
            email: " Ann@Example.ORG ".into(),
            password: "correct horse".into(),
        };
        assert_eq!(ok.validate_new().unwrap().email, "ann@example.org");
        let bad = Credentials {
            email: "ann".into(),
            password: "short".into(),
        };
        let fields: Vec<_> = bad
            .validate_new()
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["email", "password"]);
        assert!(
            !format!(
                "{:?}",
                Credentials {
                    email: "a".into(),
                    password: "secret".into()
                }
            )
            .contains("secret")
        );
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Customer, Role::Staff, Role::Courier, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(Role::Staff.needs_shop() && !Role::Admin.needs_shop());
    }
}
