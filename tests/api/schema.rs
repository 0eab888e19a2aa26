//! `schema.graphql` is what the frontend and partner tools build against: it must be the
//! schema the code serves. Regenerate with `cargo run -- print-schema --output schema.graphql`.
#[test]
fn committed_schema_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    let generated = fortnox_fulfilment::graphql::sdl();
    assert!(
        committed == generated,
        "schema.graphql is out of date: run `cargo run -- print-schema --output schema.graphql` and commit it"
    );
}
