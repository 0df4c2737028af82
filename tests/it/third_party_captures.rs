//! The dissector on real third-party captures (deepflow, nDPI, arkime; see
//! ../shared/captures/third-party/PROVENANCE.md), with Wireshark's Kafka dissector as the oracle
//! where it decodes, and on its own where tshark 4.0 fails (Produce v9, Fetch v12-13, Metadata
//! v12, librdkafka's ApiVersions v0 with four extra bytes).

use crate::common;

use common::tshark;

#[test]
fn every_third_party_pdu_decodes_and_agrees_with_tshark() {
    let Some(dir) = tshark::third_party_dir() else {
        return;
    };
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let (mut decoded, mut unpaired, mut compared, mut tshark_failed) = (0, 0, 0, 0);
    for (file, port) in tshark::THIRD_PARTY_CAPTURES {
        let path = dir.join(file);
        assert!(path.exists(), "missing capture {}", path.display());
        let pdus = tshark::pdus(&path, *port);
        assert!(!pdus.is_empty(), "tshark found no Kafka PDU in {file}");
        let ours = tshark::dissect_all(&pdus);
        for (p, d) in pdus.iter().zip(&ours) {
            let Some(d) = d else {
                // A response whose request was not captured: only its header can be read.
                unpaired += 1;
                report.push(format!(
                    "{file} frame {}: response without its request",
                    p.frame_no
                ));
                continue;
            };
            if let Some(e) = &d.error {
                failures.push(format!("{file} frame {}: {e}", p.frame_no));
                continue;
            }
            if let Err(e) = tshark::tiles(d, &p.bytes) {
                failures.push(format!("{file} frame {}: {e}", p.frame_no));
                continue;
            }
            decoded += 1;
            let api_key = d
                .root
                .find("kafka.api_key")
                .and_then(|f| f.as_int())
                .map(|k| k as i16)
                .unwrap_or_else(|| {
                    d.root
                        .children
                        .last()
                        .map(|b| b.name())
                        .and_then(|n| {
                            chronik_tui::protocol::registry::catalog()
                                .apis
                                .values()
                                .find(|a| n.starts_with(&format!("{}.", a.snake)))
                                .map(|a| a.key)
                        })
                        .unwrap_or(-1)
                });
            if p.malformed || p.unsupported_version {
                tshark_failed += 1;
                report.push(format!(
                    "{file} frame {}: tshark fails, ours decodes",
                    p.frame_no
                ));
                continue;
            }
            match tshark::compare(p, d, api_key) {
                Ok(n) => compared += n,
                Err(e) => failures.push(format!("{file}: {e}")),
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    eprintln!(
        "decoded {decoded} PDUs ({tshark_failed} that tshark fails on), {unpaired} responses without their request, {compared} fields compared with tshark"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 50, "too few fields compared: {compared}");
}
