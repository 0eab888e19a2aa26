use async_graphql::{Context, Guard, Result};

use super::ApiError;

use crate::auth::Role;

/// Lets a field through only for the listed roles.
pub struct RoleGuard {
    roles: &'static [Role],
}

impl RoleGuard {
    pub fn admin() -> Self {
        RoleGuard {
            roles: &[Role::Admin],
        }
    }
    /// The warehouse reporting shipments and stock, and admins.
    pub fn warehouse_or_admin() -> Self {
        RoleGuard {
            roles: &[Role::Admin, Role::Warehouse],
        }
    }
    pub fn merchant_warehouse_or_admin() -> Self {
        RoleGuard {
            roles: &[Role::Admin, Role::Merchant, Role::Warehouse],
        }
    }
    /// Merchants acting on their own data, and admins.
    pub fn merchant_or_admin() -> Self {
        RoleGuard {
            roles: &[Role::Admin, Role::Merchant],
        }
    }
    /// Readers of a merchant's own configuration: the merchant, its partners, admins.
    pub fn merchant_partner_or_admin() -> Self {
        RoleGuard {
            roles: &[Role::Admin, Role::Merchant, Role::Partner],
        }
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let principal = super::principal(ctx)?;
        if self.roles.contains(&principal.role) {
            Ok(())
        } else {
            let allowed: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "forbidden: this operation needs the role {}; your token has `{}`",
                allowed.join(" or "),
                principal.role.as_str()
            ))
            .into())
        }
    }
}
