//! The five commands of the Topics WebSocket, each answered with exactly one
//! response. Input comes from the client: nothing here may panic on it.

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::{Out, TenantEntry};
use crate::state::events::{decode_offset, topic};
use crate::state::State;

const ADD_TENANTS: &str = "add-tenants-v1";
const REMOVE_TENANTS: &str = "remove-tenants-v1";
const LIST_TENANTS: &str = "list-tenants-v1";
const ADD_TOPICS: &str = "add-topics-v1";
const SUBSCRIBE: &str = "subscribe-v1";
const COMMANDS: [&str; 5] = [
    ADD_TENANTS,
    REMOVE_TENANTS,
    LIST_TENANTS,
    ADD_TOPICS,
    SUBSCRIBE,
];

/// The name commands are counted under when they are not one of the five.
pub const INVALID: &str = "<invalid>";

/// Handles one text frame of connection `id`: queues the response and then
/// any events it replays.
pub(crate) fn handle(st: &mut State, client_secret: &str, id: u64, text: &str) {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let command: Option<&str> = parsed
        .as_ref()
        .and_then(|v| v.get("command"))
        .and_then(Value::as_str);
    let known = command.filter(|c| COMMANDS.contains(c));
    *st.ws
        .commands
        .entry(known.unwrap_or(INVALID).to_string())
        .or_default() += 1;
    let mut replay = Vec::new();
    let reply = match (parsed.as_ref(), known) {
        (Some(v), Some(ADD_TENANTS)) => add_tenants(st, client_secret, id, v),
        (Some(v), Some(REMOVE_TENANTS)) => remove_tenants(st, id, v),
        (Some(_), Some(LIST_TENANTS)) => list_tenants(st, id),
        (Some(v), Some(ADD_TOPICS)) => add_topics(st, id, v, &mut replay),
        (Some(_), Some(SUBSCRIBE)) => subscribe(st, id, &mut replay),
        // Not JSON, no command, or an unknown one (echoed if it is a string).
        _ => error(command),
    };
    if let Some(conn) = st.ws.conns.get(&id) {
        let _ = conn.tx.send(Out::Reply(reply.to_string()));
    }
    for (topic, seq) in replay {
        st.ws.replay(id, &st.events, topic, seq, &st.access);
    }
}

fn error(command: Option<&str>) -> Value {
    json!({ "response": command, "result": "error" })
}

fn ok(command: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("response".into(), command.into());
    m.insert("result".into(), "ok".into());
    m
}

/// The token without a `Bearer ` prefix (any case) and surrounding spaces.
fn bare_token(sent: &str) -> &str {
    let t = sent.trim();
    match t.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => t.get(7..).unwrap_or("").trim(),
        _ => t,
    }
}

fn add_tenants(st: &mut State, client_secret: &str, id: u64, v: &Value) -> Value {
    let Some(tokens) = v
        .get("accessTokens")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<&str>>>())
    else {
        return error(Some(ADD_TENANTS));
    };
    // The app's secret: a wrong one makes every token invalid.
    let secret_ok = v.get("clientSecret").and_then(Value::as_str) == Some(client_secret);
    let now = Instant::now();
    let mut added = Vec::new();
    let mut invalid = Vec::new();
    for sent in tokens {
        let bare = bare_token(sent);
        let found = st
            .access
            .get(bare)
            .filter(|a| secret_ok && a.expires_at > now)
            .map(|a| (a.tenant.clone(), a.scope.clone()));
        match found {
            Some((tenant, scope)) => {
                let tenant_id = st.tenant_mut(&tenant).tenant_id();
                let entry = TenantEntry {
                    tenant,
                    token: bare.to_string(),
                    scopes: scope.split_whitespace().map(str::to_owned).collect(),
                };
                added.push((sent, tenant_id, entry));
            }
            None => invalid.push(Value::from(sent)),
        }
    }
    let Some(conn) = st.ws.conns.get_mut(&id) else {
        return error(Some(ADD_TENANTS));
    };
    let mut ids = Map::new();
    for (sent, tenant_id, entry) in added {
        // Idempotent: the same tenant again keeps its id and takes the newer token.
        conn.tenants
            .retain(|k, e| e.tenant != entry.tenant || *k == tenant_id);
        conn.tenants.insert(tenant_id, entry);
        ids.insert(sent.to_string(), tenant_id.into());
    }
    let mut reply = ok(ADD_TENANTS);
    if !invalid.is_empty() {
        reply.insert("result".into(), "error".into());
        reply.insert("invalidTokens".into(), Value::Array(invalid));
    }
    reply.insert("tenantIds".into(), Value::Object(ids));
    Value::Object(reply)
}

fn remove_tenants(st: &mut State, id: u64, v: &Value) -> Value {
    let Some(list) = v.get("tenants").and_then(Value::as_array) else {
        return error(Some(REMOVE_TENANTS));
    };
    // Numbers; numeric strings are taken too. Unknown ids are no error.
    let ids: Vec<i64> = list
        .iter()
        .filter_map(|t| t.as_i64().or_else(|| t.as_str()?.trim().parse().ok()))
        .collect();
    if let Some(conn) = st.ws.conns.get_mut(&id) {
        for tenant_id in ids {
            conn.tenants.remove(&tenant_id);
        }
    }
    Value::Object(ok(REMOVE_TENANTS))
}

fn list_tenants(st: &mut State, id: u64) -> Value {
    let expire = st.ws.expire_with_token;
    let ids: Vec<i64> = match st.ws.conns.get_mut(&id) {
        Some(conn) => {
            if expire {
                conn.prune_expired(&st.access, Instant::now());
            }
            conn.tenants.keys().copied().collect()
        }
        None => Vec::new(),
    };
    let mut reply = ok(LIST_TENANTS);
    reply.insert("tenantIds".into(), ids.into());
    Value::Object(reply)
}

fn add_topics(st: &mut State, id: u64, v: &Value, replay: &mut Vec<(&'static str, u64)>) -> Value {
    let Some(list) = v.get("topics").and_then(Value::as_array) else {
        return error(Some(ADD_TOPICS));
    };
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for item in list {
        let name = item.get("topic").and_then(Value::as_str);
        let Some(t) = name.and_then(topic) else {
            // As sent: the name, or the whole item if it has none.
            invalid.push(name.map_or_else(|| Value::from(item.to_string()), Value::from));
            continue;
        };
        // Only offsets this sandbox issued on this topic are taken.
        let start = match item.get("offset") {
            None | Some(Value::Null) => None,
            Some(offset) => match offset
                .as_str()
                .and_then(decode_offset)
                .filter(|seq| (1..=st.events.last_seq(t)).contains(seq))
            {
                Some(seq) => Some(seq),
                None => {
                    invalid.push(Value::from(t));
                    continue;
                }
            },
        };
        valid.push((t, start));
    }
    if let Some(conn) = st.ws.conns.get_mut(&id) {
        for (t, start) in valid {
            if conn.subscribed {
                // Takes effect now: replay from the offset, or live from here.
                conn.topics.insert(t, None);
                if let Some(seq) = start {
                    replay.push((t, seq));
                }
            } else {
                conn.topics.insert(t, start);
            }
        }
    }
    let mut reply = ok(ADD_TOPICS);
    if !invalid.is_empty() {
        reply.insert("result".into(), "error".into());
        reply.insert("invalidTopics".into(), Value::Array(invalid));
    }
    Value::Object(reply)
}

fn subscribe(st: &mut State, id: u64, replay: &mut Vec<(&'static str, u64)>) -> Value {
    if let Some(conn) = st.ws.conns.get_mut(&id) {
        if !conn.subscribed {
            conn.subscribed = true;
            for (t, start) in conn.topics.iter_mut() {
                if let Some(seq) = start.take() {
                    replay.push((*t, seq));
                }
            }
        }
    }
    Value::Object(ok(SUBSCRIBE))
}

#[cfg(test)]
mod tests {
    use super::bare_token;

    #[test]
    fn bearer_prefixes_are_optional() {
        assert_eq!(bare_token("Bearer abc"), "abc");
        assert_eq!(bare_token("bearer abc "), "abc");
        assert_eq!(bare_token("BEARER  abc"), "abc");
        assert_eq!(bare_token("abc"), "abc");
        assert_eq!(bare_token("Bearé"), "Bearé");
        assert_eq!(bare_token(""), "");
    }
}
