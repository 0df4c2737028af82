//! API keys by name: the numbers the protocol guide gives each API, for code that means one API
//! (the schema table in `schema/` is where names, versions and layouts live; these constants
//! name its keys, and a test checks that they agree).

/// Produce.
pub const PRODUCE: i16 = 0;
/// Fetch.
pub const FETCH: i16 = 1;
/// ListOffsets.
pub const LIST_OFFSETS: i16 = 2;
/// Metadata.
pub const METADATA: i16 = 3;
/// OffsetCommit.
pub const OFFSET_COMMIT: i16 = 8;
/// OffsetFetch.
pub const OFFSET_FETCH: i16 = 9;
/// FindCoordinator.
pub const FIND_COORDINATOR: i16 = 10;
/// JoinGroup.
pub const JOIN_GROUP: i16 = 11;
/// Heartbeat.
pub const HEARTBEAT: i16 = 12;
/// LeaveGroup.
pub const LEAVE_GROUP: i16 = 13;
/// SyncGroup.
pub const SYNC_GROUP: i16 = 14;
/// DescribeGroups.
pub const DESCRIBE_GROUPS: i16 = 15;
/// ListGroups.
pub const LIST_GROUPS: i16 = 16;
/// SaslHandshake.
pub const SASL_HANDSHAKE: i16 = 17;
/// ApiVersions.
pub const API_VERSIONS: i16 = 18;
/// CreateTopics.
pub const CREATE_TOPICS: i16 = 19;
/// DeleteTopics.
pub const DELETE_TOPICS: i16 = 20;
/// DeleteRecords.
pub const DELETE_RECORDS: i16 = 21;
/// InitProducerId.
pub const INIT_PRODUCER_ID: i16 = 22;
/// OffsetForLeaderEpoch.
pub const OFFSET_FOR_LEADER_EPOCH: i16 = 23;
/// AddPartitionsToTxn.
pub const ADD_PARTITIONS_TO_TXN: i16 = 24;
/// AddOffsetsToTxn.
pub const ADD_OFFSETS_TO_TXN: i16 = 25;
/// EndTxn.
pub const END_TXN: i16 = 26;
/// TxnOffsetCommit.
pub const TXN_OFFSET_COMMIT: i16 = 28;
/// DescribeConfigs.
pub const DESCRIBE_CONFIGS: i16 = 32;
/// AlterConfigs.
pub const ALTER_CONFIGS: i16 = 33;
/// SaslAuthenticate.
pub const SASL_AUTHENTICATE: i16 = 36;
/// CreatePartitions.
pub const CREATE_PARTITIONS: i16 = 37;
/// DeleteGroups.
pub const DELETE_GROUPS: i16 = 42;
/// IncrementalAlterConfigs.
pub const INCREMENTAL_ALTER_CONFIGS: i16 = 44;
/// OffsetDelete.
pub const OFFSET_DELETE: i16 = 47;
/// DescribeCluster.
pub const DESCRIBE_CLUSTER: i16 = 60;
/// DescribeProducers.
pub const DESCRIBE_PRODUCERS: i16 = 61;
/// DescribeTransactions.
pub const DESCRIBE_TRANSACTIONS: i16 = 65;
/// ListTransactions.
pub const LIST_TRANSACTIONS: i16 = 66;
/// ConsumerGroupHeartbeat (KIP-848).
pub const CONSUMER_GROUP_HEARTBEAT: i16 = 68;
/// ConsumerGroupDescribe (KIP-848).
pub const CONSUMER_GROUP_DESCRIBE: i16 = 69;
/// GetTelemetrySubscriptions.
pub const GET_TELEMETRY_SUBSCRIPTIONS: i16 = 71;
/// PushTelemetry.
pub const PUSH_TELEMETRY: i16 = 72;

/// Every constant above with the name the schema table gives it.
pub const ALL: &[(i16, &str)] = &[
    (PRODUCE, "Produce"),
    (FETCH, "Fetch"),
    (LIST_OFFSETS, "ListOffsets"),
    (METADATA, "Metadata"),
    (OFFSET_COMMIT, "OffsetCommit"),
    (OFFSET_FETCH, "OffsetFetch"),
    (FIND_COORDINATOR, "FindCoordinator"),
    (JOIN_GROUP, "JoinGroup"),
    (HEARTBEAT, "Heartbeat"),
    (LEAVE_GROUP, "LeaveGroup"),
    (SYNC_GROUP, "SyncGroup"),
    (DESCRIBE_GROUPS, "DescribeGroups"),
    (LIST_GROUPS, "ListGroups"),
    (SASL_HANDSHAKE, "SaslHandshake"),
    (API_VERSIONS, "ApiVersions"),
    (CREATE_TOPICS, "CreateTopics"),
    (DELETE_TOPICS, "DeleteTopics"),
    (DELETE_RECORDS, "DeleteRecords"),
    (INIT_PRODUCER_ID, "InitProducerId"),
    (OFFSET_FOR_LEADER_EPOCH, "OffsetForLeaderEpoch"),
    (ADD_PARTITIONS_TO_TXN, "AddPartitionsToTxn"),
    (ADD_OFFSETS_TO_TXN, "AddOffsetsToTxn"),
    (END_TXN, "EndTxn"),
    (TXN_OFFSET_COMMIT, "TxnOffsetCommit"),
    (DESCRIBE_CONFIGS, "DescribeConfigs"),
    (ALTER_CONFIGS, "AlterConfigs"),
    (SASL_AUTHENTICATE, "SaslAuthenticate"),
    (CREATE_PARTITIONS, "CreatePartitions"),
    (DELETE_GROUPS, "DeleteGroups"),
    (INCREMENTAL_ALTER_CONFIGS, "IncrementalAlterConfigs"),
    (OFFSET_DELETE, "OffsetDelete"),
    (DESCRIBE_CLUSTER, "DescribeCluster"),
    (DESCRIBE_PRODUCERS, "DescribeProducers"),
    (DESCRIBE_TRANSACTIONS, "DescribeTransactions"),
    (LIST_TRANSACTIONS, "ListTransactions"),
    (CONSUMER_GROUP_HEARTBEAT, "ConsumerGroupHeartbeat"),
    (CONSUMER_GROUP_DESCRIBE, "ConsumerGroupDescribe"),
    (GET_TELEMETRY_SUBSCRIPTIONS, "GetTelemetrySubscriptions"),
    (PUSH_TELEMETRY, "PushTelemetry"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_the_schema_tables() {
        for (key, name) in ALL {
            assert_eq!(crate::registry::api_name(*key), *name, "key {key}");
        }
        let known = (0..=i16::from(u8::MAX))
            .filter(|k| crate::registry::api(*k).is_some())
            .count();
        assert_eq!(
            known,
            ALL.len(),
            "every API of the schema table has a constant"
        );
    }
}
