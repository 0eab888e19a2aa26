use clap::Parser;
use fortnox_fulfilment::auth::{generate_secret, Claims, JwtKeys};
use fortnox_fulfilment::config::{Cli, Command, Config};
use fortnox_fulfilment::graphql;
use fortnox_fulfilment::server::{shutdown_signal, App};
use fortnox_fulfilment::store::orders::{NewOrder, NewOrderLine};
use fortnox_fulfilment::store::Store;
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

/// The server allocates and frees many small values per request (rows, GraphQL values,
/// JSON); glibc's malloc and free took about a sixth of its CPU for a page of 50 orders.
/// jemalloc cut a list's time by about a tenth at the same resident memory (mimalloc was
/// as fast but held some 20 MiB more at idle). docs/throughput.md has the figures.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let store = Store::connect(&config.server.database_url).await?;
            store.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::PrintSchema { output } => {
            let sdl = graphql::sdl();
            match output {
                Some(path) => std::fs::write(&path, sdl)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display())),
                None => {
                    print!("{sdl}");
                    Ok(())
                }
            }
        }
        Command::Token {
            role,
            merchants,
            ttl,
            sub,
        } => {
            let secret = config
                .auth
                .jwt_secret
                .ok_or_else(|| anyhow::anyhow!("JWT_SECRET is not set: set it to the server's secret so that the server accepts the token"))?;
            let ttl = chrono::Duration::from_std(*ttl)?;
            let claims = Claims {
                sub,
                exp: (chrono::Utc::now() + ttl).timestamp(),
                role,
                merchants,
            };
            println!("{}", JwtKeys::new(&secret).issue(&claims)?);
            Ok(())
        }
        Command::Seed => seed(config).await,
        #[cfg(feature = "sandbox")]
        Command::Demo => fortnox_fulfilment::demo::run(config).await,
        #[cfg(feature = "sandbox")]
        Command::Sandbox {
            bind,
            seed,
            client_id,
            client_secret,
        } => fortnox_sandbox::run_standalone(bind, client_id, client_secret, seed.is_some()).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let secret = match &config.auth.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            let secret = generate_secret();
            tracing::warn!(
                "JWT_SECRET is not set: using a generated development secret for this run only. \
                 Set JWT_SECRET in production. Development secret: {secret}"
            );
            let admin = Claims {
                sub: "dev-admin".into(),
                exp: (chrono::Utc::now() + chrono::Duration::hours(12)).timestamp(),
                role: fortnox_fulfilment::auth::Role::Admin,
                merchants: vec![],
            };
            let secret = SecretString::from(secret);
            let token = JwtKeys::new(&secret).issue(&admin)?;
            tracing::warn!("development admin token (12 h): {token}");
            secret
        }
    };
    let app = App::build(&config, &secret).await?;
    let listener = tokio::net::TcpListener::bind(config.server.bind_addr)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (set BIND_ADDR to a free address)",
                config.server.bind_addr
            )
        })?;
    app.serve(listener, shutdown_signal()).await
}

/// A development merchant (with product ART-1 and a rule for DHL) and three orders, as if
/// imported from Fortnox: two pass the checks, one stops in RESERVED (a zero quantity).
/// `demo` shows the whole flow with Fortnox; this is for trying the API on its own.
async fn seed(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.server.database_url).await?;
    store.migrate().await?;
    let merchant = store.create_merchant("Demo Merchant AB").await?;
    let product = fortnox_fulfilment::store::catalog::NewProduct {
        merchant_id: merchant.id,
        sku: "ART-1".into(),
        name: "T-shirt".into(),
        ean: None,
        weight_grams: None,
        width_mm: None,
        height_mm: None,
        depth_mm: None,
        price: None,
    };
    store
        .create_product(product)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .add_shipping_rule(merchant.id, "DHL*", "DHL_EXPRESS_WORLDWIDE")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let quantities = [("1", "2"), ("2", "1"), ("3", "0")];
    for (document, quantity) in quantities {
        let order = NewOrder {
            merchant_id: merchant.id,
            fortnox_document_number: document.to_owned(),
            way_of_delivery: Some("DHL".into()),
            delivery_address: Some(
                serde_json::json!({"name": "Anna Andersson", "street": "Storgatan 1", "zip_code": "111 22", "city": "Stockholm", "country": "Sverige", "country_code": "SE"}),
            ),
            fortnox_snapshot: serde_json::json!({
                "DocumentNumber": document, "CustomerName": "Anna Andersson", "Address1": "Storgatan 1",
                "ZipCode": "111 22", "City": "Stockholm", "Country": "Sverige", "WayOfDelivery": "DHL",
                "DeliveryState": "delivery", "WarehouseReady": false, "NotCompleted": false,
            }),
            lines: vec![NewOrderLine {
                fortnox_row_id: Some(1),
                article_number: Some("ART-1".into()),
                description: "T-shirt".into(),
                ordered_quantity: quantity.into(),
            }],
        };
        if let Some(order) = store.insert_order(order).await? {
            println!("order {} (Fortnox {document})", order.id);
        }
    }
    println!("merchant {}", merchant.id);
    Ok(())
}
