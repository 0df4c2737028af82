//! Before a replay: the topics the capture implies are created on the broker replayed against,
//! over the wire like any client would (ApiVersions, SASL/PLAIN when the capture
//! authenticated, CreateTopics, then Metadata for the ids the broker gave them), so the same
//! requests find the same topics with the same partitions.

use std::collections::BTreeMap;

use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, MetadataRequest, RequestHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::load::TopicSeen;
use crate::broker::frame::read_frame;
use crate::protocol::errors;

/// What setting up did.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Topics created, with their partitions.
    pub created: Vec<(String, i32)>,
    /// Topics that were there already.
    pub existing: Vec<String>,
    /// Topic ids: the capture's, and the live broker's for the same topic.
    pub topic_ids: Vec<(String, String)>,
    /// What did not go as planned (a topic with other partitions, a refused creation).
    pub warnings: Vec<String>,
}

/// A minimal client for the setup requests.
struct Client {
    stream: TcpStream,
    corr: i32,
    /// Versions the broker serves, by API key.
    versions: BTreeMap<i16, (i16, i16)>,
}

const CLIENT_ID: &str = "chronik-tui-replay";

impl Client {
    async fn connect(addr: &str) -> Result<Client, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut c = Client {
            stream,
            corr: 0,
            versions: BTreeMap::new(),
        };
        let resp = c.call(0, &ApiVersionsRequest::default()).await?;
        if resp.error_code != errors::NONE {
            return Err(format!(
                "ApiVersions: {}",
                errors::error_name(resp.error_code)
            ));
        }
        c.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(c)
    }

    /// The newest version of `R` that both the broker and kafka-protocol have.
    fn version<R: Request>(&self) -> Option<i16> {
        let (min, max) = *self.versions.get(&R::KEY)?;
        let v = max.min(R::VERSIONS.max);
        (v >= min.max(R::VERSIONS.min)).then_some(v)
    }

    async fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response, String> {
        let what = crate::protocol::registry::api_name(R::KEY);
        self.corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.corr)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut b = BytesMut::new();
        header
            .encode(&mut b, R::header_version(version))
            .and_then(|_| req.encode(&mut b, version))
            .map_err(|e| format!("{what} v{version}: {e}"))?;
        let frame = crate::protocol::frame::with_size_prefix(&b);
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let resp = read_frame(
            &mut self.stream,
            crate::protocol::frame::DEFAULT_MAX_FRAME_BYTES,
        )
        .await
        .map_err(|e| format!("{what}: {e}"))?
        .ok_or_else(|| format!("{what}: the broker closed the connection"))?;
        let mut body = bytes::Bytes::from(resp).split_off(4);
        kafka_protocol::messages::ResponseHeader::decode(
            &mut body,
            R::Response::header_version(version),
        )
        .and_then(|_| R::Response::decode(&mut body, version))
        .map_err(|e| format!("{what} v{version} response: {e}"))
    }

    /// SASL/PLAIN, as the capture authenticated.
    async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), String> {
        let (Some(hv), Some(av)) = (
            self.version::<SaslHandshakeRequest>().filter(|v| *v >= 1),
            self.version::<SaslAuthenticateRequest>(),
        ) else {
            return Err("the broker does not serve SaslHandshake v1 and SaslAuthenticate".into());
        };
        let hs = self
            .call(
                hv,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            )
            .await?;
        if hs.error_code != errors::NONE {
            return Err(format!(
                "SaslHandshake PLAIN: {}",
                errors::error_name(hs.error_code)
            ));
        }
        let token = format!("\0{user}\0{password}");
        let auth = self
            .call(
                av,
                &SaslAuthenticateRequest::default().with_auth_bytes(token.into_bytes().into()),
            )
            .await?;
        if auth.error_code != errors::NONE {
            return Err(format!(
                "SaslAuthenticate as {user}: {}",
                errors::error_name(auth.error_code)
            ));
        }
        Ok(())
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Creates `topics` on the broker at `addr` (authenticating first when `sasl` is given) and
/// learns their ids. A broker that cannot be reached is an error; anything else that goes wrong
/// is a warning, and the replay goes on.
pub async fn prepare(
    addr: &str,
    topics: &BTreeMap<String, TopicSeen>,
    sasl: Option<&(String, String)>,
) -> Result<Prepared, String> {
    let mut done = Prepared::default();
    let mut c = Client::connect(addr).await?;
    if let Some((user, password)) = sasl {
        if let Err(e) = c.authenticate(user, password).await {
            done.warnings
                .push(format!("topics not created: authenticating: {e}"));
            return Ok(done);
        }
    }
    if topics.is_empty() {
        return Ok(done);
    }
    match c.version::<CreateTopicsRequest>() {
        None => done
            .warnings
            .push("topics not created: the broker does not serve CreateTopics".into()),
        Some(v) => {
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(
                    topics
                        .iter()
                        .map(|(name, t)| {
                            CreatableTopic::default()
                                .with_name(topic_name(name))
                                .with_num_partitions(t.partitions.max(1))
                                // -1: the broker's default (v4+); a single broker has one copy.
                                .with_replication_factor(if v >= 4 { -1 } else { 1 })
                        })
                        .collect(),
                );
            let resp = c.call(v, &req).await?;
            for t in resp.topics {
                let name = t.name.0.to_string();
                let want = topics.get(&name).map_or(1, |t| t.partitions.max(1));
                match t.error_code {
                    errors::NONE => done.created.push((name, want)),
                    errors::TOPIC_ALREADY_EXISTS => done.existing.push(name),
                    code => done.warnings.push(format!(
                        "topic {name} not created: {}{}",
                        errors::error_name(code),
                        t.error_message
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    )),
                }
            }
        }
    }
    let Some(v) = c.version::<MetadataRequest>() else {
        return Ok(done);
    };
    let req = MetadataRequest::default().with_topics(Some(
        topics
            .keys()
            .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
            .collect(),
    ));
    let meta = c.call(v, &req).await?;
    for t in meta.topics {
        let Some(name) = t.name.map(|n| n.0.to_string()) else {
            continue;
        };
        let Some(seen) = topics.get(&name) else {
            continue;
        };
        let have = t.partitions.len() as i32;
        if t.error_code == errors::NONE && have != seen.partitions.max(1) {
            done.warnings.push(format!(
                "topic {name} has {have} partitions on the broker, {} in the capture",
                seen.partitions
            ));
        }
        if let Some(recorded) = &seen.id {
            if !t.topic_id.is_nil() {
                done.topic_ids
                    .push((recorded.clone(), t.topic_id.to_string()));
            }
        }
    }
    Ok(done)
}
