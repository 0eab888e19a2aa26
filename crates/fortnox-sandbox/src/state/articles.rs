//! Articles: reading one, seeding (upsert), `POST`, `PUT` and `DELETE
//! /3/articles`. Each change emits its `articles` event.

use serde_json::{Map, Value};

use super::*;

impl Tenant {
    pub fn article(&self, number: &str) -> SResult<&Article> {
        self.articles.get(number).ok_or_else(|| {
            SandboxError::not_found("Kan inte hitta artikeln.", codes::ARTICLE_NOT_FOUND)
        })
    }

    /// Creates or replaces the article (seeding, and the end of every article
    /// change): `article-created-v1` or `article-updated-v1`.
    pub fn upsert_article(&mut self, mut a: Article, base_url: &str) -> Article {
        a.url = Some(format!("{base_url}/3/articles/{}", a.article_number));
        let reserved = a.reserved_quantity.unwrap_or(Quantity::ZERO);
        a.reserved_quantity = Some(reserved);
        if let Some(q) = a.quantity_in_stock {
            a.disposable_quantity = Some(Quantity(q.0 - reserved.0));
        }
        let existed = self
            .articles
            .insert(a.article_number.clone(), a.clone())
            .is_some();
        let kind = if existed {
            "article-updated-v1"
        } else {
            "article-created-v1"
        };
        self.emit("articles", kind, &a.article_number);
        a
    }

    /// `POST /3/articles`: a new article; its `ArticleNumber` must be free.
    pub fn create_article(
        &mut self,
        body: &Map<String, Value>,
        base_url: &str,
    ) -> SResult<Article> {
        let a: Article =
            serde_json::from_value(Value::Object(body.clone())).map_err(SandboxError::bad_json)?;
        if a.article_number.trim().is_empty() {
            return Err(SandboxError::bad_json("ArticleNumber is required"));
        }
        if self.articles.contains_key(&a.article_number) {
            return Err(SandboxError::bad_request(
                "Artikelnumret används redan.",
                codes::ARTICLE_EXISTS,
            ));
        }
        Ok(self.upsert_article(a, base_url))
    }

    /// `PUT /3/articles/{n}`: overlays the given fields.
    pub fn update_article(
        &mut self,
        number: &str,
        body: &Map<String, Value>,
        base_url: &str,
    ) -> SResult<Article> {
        let current = self.article(number)?.clone();
        let mut v = serde_json::to_value(&current).map_err(SandboxError::bad_json)?;
        let mut patch = body.clone();
        patch.remove("ArticleNumber");
        merge(&mut v, &patch);
        let a: Article = serde_json::from_value(v).map_err(SandboxError::bad_json)?;
        Ok(self.upsert_article(a, base_url))
    }

    /// `DELETE /3/articles/{n}`: the article is gone (`article-deleted-v1`).
    pub fn delete_article(&mut self, number: &str) -> SResult<Article> {
        let gone = self.articles.remove(number).ok_or_else(|| {
            SandboxError::not_found("Kan inte hitta artikeln.", codes::ARTICLE_NOT_FOUND)
        })?;
        self.emit("articles", "article-deleted-v1", &gone.article_number);
        Ok(gone)
    }
}
