//! One leg's SRTP session (RFC 3711) once its SDP negotiated `RTP/SAVP`: a context keyed by the
//! far end's `a=crypto` that authenticates and decrypts what it sends (RTP and RTCP, with
//! replay protection), and one keyed by ours that protects what we send it. The cryptography is
//! webrtc-srtp's; this module maps the SDES suite to its profile and keeps the two directions.

use domains::srtp::{Crypto, CryptoSuite, MasterKey};
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Packets the replay window remembers (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 128;

pub struct SrtpSession {
    /// The far end's crypto line this session was made from: a re-INVITE with the same keeps it.
    pub remote: Crypto,
    inbound: Context,
    outbound: Context,
}

fn profile(suite: CryptoSuite) -> ProtectionProfile {
    match suite {
        CryptoSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    }
}

impl SrtpSession {
    /// A session speaking `remote`'s suite: what arrives is checked with the far end's key, what
    /// leaves is protected with `local` (the key our SDP sent).
    pub fn new(local: &MasterKey, remote: &Crypto) -> Result<SrtpSession, String> {
        let profile = profile(remote.suite);
        let inbound = Context::new(
            remote.key.key(),
            remote.key.salt(),
            profile,
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
        )
        .map_err(|e| e.to_string())?;
        let outbound = Context::new(local.key(), local.salt(), profile, None, None).map_err(|e| e.to_string())?;
        Ok(SrtpSession { remote: remote.clone(), inbound, outbound })
    }

    /// The plain RTP packet of an SRTP one; `None` when it fails authentication or is a replay.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.inbound.decrypt_rtp(packet).ok().map(|p| p.to_vec())
    }

    pub fn protect_rtp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.outbound.encrypt_rtp(packet).ok().map(|p| p.to_vec())
    }

    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.inbound.decrypt_rtcp(packet).ok().map(|p| p.to_vec())
    }

    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.outbound.encrypt_rtcp(packet).ok().map(|p| p.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend(seq.to_be_bytes());
        p.extend((u32::from(seq) * 160).to_be_bytes());
        p.extend(0x1234_5678u32.to_be_bytes());
        p.extend([0x55; 160]);
        p
    }

    #[test]
    fn two_ends_with_each_others_keys_talk_and_strangers_do_not() {
        for suite in CryptoSuite::ALL {
            let (ka, kb) = (MasterKey([1; 30]), MasterKey([2; 30]));
            let mut a = SrtpSession::new(&ka, &Crypto { tag: 1, suite, key: kb }).unwrap();
            let mut b = SrtpSession::new(&kb, &Crypto { tag: 1, suite, key: ka }).unwrap();
            let plain = rtp(1);
            let wire = a.protect_rtp(&plain).unwrap();
            let tag = if suite == CryptoSuite::AesCm128HmacSha1_80 { 10 } else { 4 };
            assert_eq!(wire.len(), plain.len() + tag, "{suite:?}");
            assert_ne!(wire[12..172], plain[12..], "the payload is encrypted");
            assert_eq!(b.unprotect_rtp(&wire), Some(plain.clone()));
            assert_eq!(b.unprotect_rtp(&wire), None, "a replay is refused");
            let mut forged = a.protect_rtp(&rtp(2)).unwrap();
            forged[20] ^= 1;
            assert_eq!(b.unprotect_rtp(&forged), None, "a changed packet fails authentication");
            assert_eq!(b.unprotect_rtp(&plain), None, "plain RTP is not accepted");
            let report = domains::rtcp::build(0x1234_5678, None, &[], "x");
            let sealed = b.protect_rtcp(&report).unwrap();
            assert_eq!(a.unprotect_rtcp(&sealed), Some(report));
        }
    }
}
