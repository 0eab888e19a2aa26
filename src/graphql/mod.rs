//! The GraphQL API. Resolvers are thin: they read the caller from the context, call one
//! use case (`services`) with it, and map the result to GraphQL types. Authentication
//! happens once, in the HTTP/WebSocket layer (`server`); role checks here, by guards; the
//! tenant scope is applied by the use cases and the store.
mod catalog;
mod cost;
mod error;
mod fortnox;
mod guard;
mod limits;
mod loaders;
mod mutation;
mod order_events;
mod pagination;
mod product_sync;
mod query;
mod subscription;
mod types;
mod webhooks;

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{
    Context, Data, Executor, MergedObject, Request, Response, Schema, SchemaBuilder,
};
use futures::stream::BoxStream;
use futures::StreamExt;

use catalog::{CatalogMutation, CatalogQuery};
pub(crate) use error::{parse_id, Result};
pub use error::{ApiError, ErrorCode, INTERNAL_MESSAGE};
use fortnox::{FortnoxMutation, FortnoxQuery};
pub use guard::RoleGuard;
use mutation::OrderMutation;
use order_events::OrderEventsQuery;
use product_sync::{ProductSyncMutation, ProductSyncQuery};
use query::OrderQuery;
use subscription::SubscriptionRoot;
use webhooks::{WebhookMutation, WebhookQuery};

use crate::auth::Principal;
use crate::config::FortnoxSettings;
use crate::events::EventFeed;
use crate::fortnox::FortnoxClient;
use crate::services::Services;
use crate::store::Store;

type GraphqlSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema as the server runs it, over HTTP and WebSocket alike: a request's size is
/// checked before async-graphql walks it (`cost`), and every error in the answer gets a
/// code (`error::with_codes`).
///
/// These two run around the schema, not as async-graphql extensions: once a schema has any
/// extension, async-graphql sends every field of every answer through the extensions'
/// `resolve` hook (a type-registry lookup and a boxed future per field), which cost a tenth
/// of the server's time for a page of 50 orders, though neither extension looks at fields.
#[derive(Clone)]
pub struct AppSchema(GraphqlSchema);

impl Executor for AppSchema {
    async fn execute(&self, mut request: Request) -> Response {
        if let Err(refused) = cost::check_request(&mut request) {
            return Response::from_errors(vec![refused]);
        }
        error::with_codes(self.0.execute(request).await)
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        if let Err(refused) = cost::check_request(&mut request) {
            return futures::stream::once(async move { Response::from_errors(vec![refused]) })
                .boxed();
        }
        self.0
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(error::with_codes)
            .boxed()
    }
}

/// Nesting and cost limits keep a single query from walking the whole database.
const MAX_DEPTH: usize = 12;

pub fn schema_builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(cost::MAX_COMPLEXITY)
}

pub fn build_schema(
    store: Store,
    feed: EventFeed,
    fortnox: FortnoxClient,
    webhooks: crate::webhooks::Webhooks,
    settings: &FortnoxSettings,
) -> AppSchema {
    // The loaders keep no cache, so sharing them across requests serves no stale data.
    let lines = DataLoader::new(loaders::OrderLinesLoader(store.clone()), tokio::spawn);
    let events = DataLoader::new(loaders::OrderEventsLoader(store.clone()), tokio::spawn);
    let duplicates = DataLoader::new(
        loaders::DuplicateInvoicesLoader(store.clone()),
        tokio::spawn,
    );
    let services = Services::new(store.clone(), feed, fortnox, webhooks, settings);
    AppSchema(
        schema_builder()
            .data(lines)
            .data(events)
            .data(duplicates)
            .data(store)
            .data(services)
            .finish(),
    )
}

/// The SDL committed as `schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    OrderQuery,
    OrderEventsQuery,
    FortnoxQuery,
    CatalogQuery,
    ProductSyncQuery,
    WebhookQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    OrderMutation,
    FortnoxMutation,
    CatalogMutation,
    ProductSyncMutation,
    WebhookMutation,
);

pub(crate) fn principal<'a>(ctx: &'a Context<'_>) -> Result<&'a Principal> {
    // The HTTP and WebSocket layers refuse requests without a token; this is a safety net.
    ctx.data_opt::<Principal>().ok_or_else(|| {
        ApiError::unauthenticated("authentication required: send `Authorization: Bearer <JWT>`")
    })
}

pub(crate) fn store<'a>(ctx: &'a Context<'_>) -> &'a Store {
    ctx.data_unchecked::<Store>()
}

pub(crate) fn services<'a>(ctx: &'a Context<'_>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}
