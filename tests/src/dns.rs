//! A tiny authoritative DNS server on loopback for tests of RFC 3263 resolution: it answers the
//! SRV and A records it is given (hickory-proto encodes and decodes the messages) and answers
//! everything else with an empty NOERROR, as a zone without those records would.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

#[derive(Clone, Default)]
pub struct Zone {
    /// (name, priority, weight, port, target)
    pub srv: Vec<(String, u16, u16, u16, String)>,
    pub a: Vec<(String, Ipv4Addr)>,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    pub async fn start(zone: Zone) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS");
        let addr = socket.local_addr().expect("addr");
        let zone = Arc::new(zone);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
                let Some(reply) = answer(&zone, buf.get(..n).unwrap_or_default()) else { continue };
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        DnsServer { addr, task }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fqdn(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    format!("{n}.")
}

fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut response = Message::new();
    response.set_id(request.id());
    response.set_message_type(MessageType::Response);
    response.set_op_code(request.op_code());
    response.set_authoritative(true);
    response.set_recursion_desired(request.recursion_desired());
    response.set_recursion_available(true);
    response.set_response_code(ResponseCode::NoError);
    for q in request.queries() {
        response.add_query(q.clone());
        let asked = fqdn(&q.name().to_utf8());
        let name = q.name().clone();
        match q.query_type() {
            RecordType::SRV => {
                for (n, priority, weight, port, target) in &zone.srv {
                    if fqdn(n) == asked {
                        let target = Name::from_utf8(fqdn(target)).ok()?;
                        let rdata = RData::SRV(SRV::new(*priority, *weight, *port, target));
                        response.add_answer(Record::from_rdata(name.clone(), 60, rdata));
                    }
                }
            }
            RecordType::A => {
                for (n, ip) in &zone.a {
                    if fqdn(n) == asked {
                        response.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(*ip))));
                    }
                }
            }
            _ => {}
        }
    }
    response.to_vec().ok()
}
