//! UPDATE messages (RFC 4271 §4.3, RFC 4760) and their RFC 7606 decoding.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::attr::decode::As4Pending;
use crate::attr::{self, AttrSlot, PathAttributes, code, flags};
use crate::context::{Context, MpErrorHandling};
use crate::family::{Afi, Family, Safi};
use crate::header::{HEADER_LEN, MessageType, patch_len, write_header};
use crate::notification::{Notification, code as ncode};
use crate::prefix::{Nlri, NlriError, decode_nlri};
use crate::reader::Reader;
use crate::verdict::{Action, Problem, SessionReset, Verdict};
use crate::{AS_TRANS, EncodeError};

/// A next hop as carried by NEXT_HOP or MP_REACH_NLRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    V4(Ipv4Addr),
    /// An IPv6 global address and, when on a shared link, its link-local
    /// companion (RFC 2545 §3).
    V6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    fn wire_len(&self) -> usize {
        match self {
            Self::V4(_) => 4,
            Self::V6 {
                link_local: None, ..
            } => 16,
            Self::V6 {
                link_local: Some(_),
                ..
            } => 32,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::V4(a) => out.extend_from_slice(&a.octets()),
            Self::V6 { global, link_local } => {
                out.extend_from_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.extend_from_slice(&ll.octets());
                }
            }
        }
    }
}

/// MP_REACH_NLRI for a family this codec routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub family: Family,
    pub next_hop: NextHop,
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI for a family this codec routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub family: Family,
    pub nlri: Vec<Nlri>,
}

/// An UPDATE's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 unicast withdrawals in the base Withdrawn Routes field.
    pub withdrawn: Vec<Nlri>,
    pub attributes: PathAttributes,
    /// IPv4 unicast NLRI in the base NLRI field.
    pub nlri: Vec<Nlri>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
}

/// A decoded UPDATE, with what RFC 7606 says to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    pub update: Update,
    /// What to do with the routes of families that were not disabled.
    pub verdict: Verdict,
    /// Families to drop for the rest of the session; their NLRI have been
    /// removed from `update`.
    pub disabled: Vec<Family>,
    /// Every error found, for logs and counters.
    pub problems: Vec<Problem>,
}

impl From<Update> for ParsedUpdate {
    fn from(update: Update) -> Self {
        Self {
            update,
            verdict: Verdict::Accept,
            disabled: Vec::new(),
            problems: Vec::new(),
        }
    }
}

impl Update {
    /// The family this UPDATE marks End-of-RIB for (RFC 4724 §2): an empty
    /// UPDATE for IPv4 unicast, a lone empty MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(&self) -> Option<Family> {
        let no_base = self.withdrawn.is_empty() && self.nlri.is_empty() && self.mp_reach.is_none();
        if !no_base {
            return None;
        }
        let attrs_empty = self.attributes.is_empty();
        match &self.mp_unreach {
            None if attrs_empty => Some(Family::IPV4_UNICAST),
            Some(un) if un.nlri.is_empty() && attrs_empty => Some(un.family),
            _ => None,
        }
    }

    /// Every NLRI this UPDATE withdraws, plus every NLRI it announces when
    /// the verdict is treat-as-withdraw.
    pub fn withdrawals(&self, treat_as_withdraw: bool) -> impl Iterator<Item = &Nlri> {
        let announced = treat_as_withdraw.then(|| {
            self.nlri
                .iter()
                .chain(self.mp_reach.iter().flat_map(|m| &m.nlri))
        });
        self.withdrawn
            .iter()
            .chain(self.mp_unreach.iter().flat_map(|m| &m.nlri))
            .chain(announced.into_iter().flatten())
    }

    /// Whether the UPDATE announces anything.
    pub fn has_reachable(&self) -> bool {
        !self.nlri.is_empty() || self.mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty())
    }
}

fn reset(subcode: u8, data: Vec<u8>) -> Action {
    Action::ResetSession(Notification::with_data(
        ncode::UPDATE_MESSAGE,
        subcode,
        data,
    ))
}

/// Decode the body of an UPDATE (the octets after the header).
pub fn decode_update(body: &[u8], ctx: &Context) -> Result<ParsedUpdate, SessionReset> {
    let mut problems = Vec::new();
    let fatal = |reason: &str, subcode: u8, problems: &mut Vec<Problem>| {
        let action = reset(subcode, Vec::new());
        problems.push(Problem::new(None, action.clone(), reason));
        finish_reset(std::mem::take(problems))
    };
    let mut r = Reader::new(body);
    let Some(withdrawn_len) = r.u16().map(usize::from) else {
        return Err(fatal("truncated Withdrawn Routes Length", 1, &mut problems));
    };
    let Some(withdrawn_field) = r.take(withdrawn_len) else {
        return Err(fatal(
            "Withdrawn Routes Length overruns the message",
            1,
            &mut problems,
        ));
    };
    let Some(attrs_len) = r.u16().map(usize::from) else {
        return Err(fatal(
            "truncated Total Path Attribute Length",
            1,
            &mut problems,
        ));
    };
    let Some(attrs_field) = r.take(attrs_len) else {
        return Err(fatal(
            "Total Path Attribute Length overruns the message",
            1,
            &mut problems,
        ));
    };
    let nlri_field = r.rest();

    let mut update = Update::default();
    let v4_add_path = ctx.add_path_receive.get(Family::IPV4_UNICAST);
    if let Err(e) = decode_nlri(
        withdrawn_field,
        Family::IPV4_UNICAST,
        v4_add_path,
        &mut update.withdrawn,
    ) {
        return Err(fatal(
            &format!("Withdrawn Routes: {e}"),
            ncode::update::INVALID_NETWORK_FIELD,
            &mut problems,
        ));
    }
    if let Err(e) = decode_nlri(
        nlri_field,
        Family::IPV4_UNICAST,
        v4_add_path,
        &mut update.nlri,
    ) {
        return Err(fatal(
            &format!("NLRI: {e}"),
            ncode::update::INVALID_NETWORK_FIELD,
            &mut problems,
        ));
    }

    let mut disabled = Vec::new();
    decode_attributes(attrs_field, ctx, &mut update, &mut problems, &mut disabled)?;

    let has_ipv4 = !(update.nlri.is_empty() && update.withdrawn.is_empty());
    if has_ipv4 && !ctx.families.ipv4_unicast {
        // IPv4 was not negotiated: ignore its NLRI rather than learn routes
        // the peer was never allowed to send.
        problems.push(Problem::new(
            None,
            Action::AttributeDiscard,
            "IPv4 NLRI on a session without IPv4 unicast",
        ));
        update.nlri.clear();
        update.withdrawn.clear();
    }

    let strongest = problems.iter().map(|p| &p.action).max().cloned();
    let verdict = match strongest {
        Some(Action::ResetSession(_)) => return Err(finish_reset(problems)),
        Some(Action::TreatAsWithdraw) => Verdict::TreatAsWithdraw,
        Some(Action::AttributeDiscard) => Verdict::AttributeDiscard,
        Some(Action::DisableFamily(_)) => {
            if problems.iter().any(|p| p.action == Action::TreatAsWithdraw) {
                Verdict::TreatAsWithdraw
            } else if problems
                .iter()
                .any(|p| p.action == Action::AttributeDiscard)
            {
                Verdict::AttributeDiscard
            } else {
                Verdict::Accept
            }
        }
        None => Verdict::Accept,
    };
    Ok(ParsedUpdate {
        update,
        verdict,
        disabled,
        problems,
    })
}

fn finish_reset(problems: Vec<Problem>) -> SessionReset {
    let notification = problems
        .iter()
        .find_map(|p| match &p.action {
            Action::ResetSession(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| {
            Notification::new(
                ncode::UPDATE_MESSAGE,
                ncode::update::MALFORMED_ATTRIBUTE_LIST,
            )
        });
    SessionReset {
        notification,
        problems,
    }
}

fn decode_attributes(
    field: &[u8],
    ctx: &Context,
    update: &mut Update,
    problems: &mut Vec<Problem>,
    disabled: &mut Vec<Family>,
) -> Result<(), SessionReset> {
    let mut seen = [false; 256];
    let mut as4 = As4Pending::default();
    let mut r = Reader::new(field);
    while !r.is_empty() {
        // RFC 7606 §4: a header that does not fit, or a value that overruns
        // the attribute field, is a framing error.
        let (Some(attr_flags), Some(attr_code)) = (r.u8(), r.u8()) else {
            framing_error(ctx, &seen, problems)?;
            break;
        };
        let len = if attr_flags & flags::EXTENDED_LENGTH != 0 {
            r.u16().map(usize::from)
        } else {
            r.u8().map(usize::from)
        };
        let Some(value) = len.and_then(|len| r.take(len)) else {
            framing_error(ctx, &seen, problems)?;
            break;
        };
        let seen_slot = &mut seen[usize::from(attr_code)];
        let duplicate = std::mem::replace(seen_slot, true);

        if attr_code == code::MP_REACH_NLRI || attr_code == code::MP_UNREACH_NLRI {
            if duplicate {
                let action = reset(ncode::update::MALFORMED_ATTRIBUTE_LIST, Vec::new());
                problems.push(Problem::new(
                    Some(attr_code),
                    action,
                    "attribute appears twice",
                ));
                return Err(finish_reset(std::mem::take(problems)));
            }
            decode_mp(
                attr_flags, attr_code, value, ctx, update, problems, disabled,
            )?;
            continue;
        }
        if duplicate {
            let reason = "duplicate attribute; first occurrence kept";
            problems.push(Problem::new(
                Some(attr_code),
                Action::AttributeDiscard,
                reason,
            ));
            continue;
        }
        let attrs = &mut update.attributes;
        match attr::decode_attribute(attr_flags, attr_code, value, ctx, attrs, &mut as4) {
            Ok(()) => attrs.layout.push(AttrSlot {
                code: attr_code,
                flags: attr_flags,
            }),
            Err(fault) => problems.push(Problem::new(Some(attr_code), fault.action, fault.reason)),
        }
    }
    update.attributes.other.sort_by_key(|a| a.code);
    if !ctx.four_octet_as {
        merge_as4(&mut update.attributes, as4);
    }
    for family in disabled.iter() {
        if update
            .mp_reach
            .as_ref()
            .is_some_and(|m| m.family == *family)
        {
            update.mp_reach = None;
        }
        if update
            .mp_unreach
            .as_ref()
            .is_some_and(|m| m.family == *family)
        {
            update.mp_unreach = None;
        }
    }
    check_mandatory(update, ctx, problems);
    Ok(())
}

/// Decode MP_REACH_NLRI or MP_UNREACH_NLRI into `update`, turning errors
/// into the configured approach (RFC 7606 §7.11, §7.12).
fn decode_mp(
    attr_flags: u8,
    attr_code: u8,
    value: &[u8],
    ctx: &Context,
    update: &mut Update,
    problems: &mut Vec<Problem>,
    disabled: &mut Vec<Family>,
) -> Result<(), SessionReset> {
    let outcome = if attr_code == code::MP_REACH_NLRI {
        decode_mp_reach(attr_flags, value, ctx).map(|m| update.mp_reach = m)
    } else {
        decode_mp_unreach(attr_flags, value, ctx).map(|m| update.mp_unreach = m)
    };
    match outcome {
        Ok(()) => update.attributes.layout.push(AttrSlot {
            code: attr_code,
            flags: attr_flags,
        }),
        Err(MpFault::Ignore(reason)) => problems.push(Problem::new(
            Some(attr_code),
            Action::AttributeDiscard,
            reason,
        )),
        Err(MpFault::Malformed { family, reason }) => {
            let action = match (ctx.mp_errors, family) {
                (MpErrorHandling::DisableFamily, Some(f)) if f.is_routable() => {
                    disabled.push(f);
                    Action::DisableFamily(f)
                }
                _ if attr_code == code::MP_REACH_NLRI => {
                    reset(ncode::update::MALFORMED_ATTRIBUTE_LIST, Vec::new())
                }
                _ => reset(
                    ncode::update::OPTIONAL_ATTRIBUTE,
                    attribute_bytes(attr_flags, attr_code, value),
                ),
            };
            let is_reset = matches!(action, Action::ResetSession(_));
            problems.push(Problem::new(Some(attr_code), action, reason));
            if is_reset {
                return Err(finish_reset(std::mem::take(problems)));
            }
        }
    }
    Ok(())
}

/// RFC 7606 §4: treat-as-withdraw needs every NLRI located. If the framing
/// broke before MP attributes that could follow were seen, we cannot know
/// what to withdraw, so the session must be reset.
fn framing_error(
    ctx: &Context,
    seen: &[bool; 256],
    problems: &mut Vec<Problem>,
) -> Result<(), SessionReset> {
    let mp_possible = ctx.families.ipv6_unicast || ctx.extended_next_hop;
    let mp_seen =
        seen[usize::from(code::MP_REACH_NLRI)] && seen[usize::from(code::MP_UNREACH_NLRI)];
    if !mp_possible || mp_seen {
        problems.push(Problem::new(
            None,
            Action::TreatAsWithdraw,
            "attribute framing error; NLRI located through the attribute length",
        ));
        Ok(())
    } else {
        problems.push(Problem::new(
            None,
            reset(ncode::update::MALFORMED_ATTRIBUTE_LIST, Vec::new()),
            "attribute framing error before MP_REACH/MP_UNREACH could be located",
        ));
        Err(finish_reset(std::mem::take(problems)))
    }
}

fn attribute_bytes(attr_flags: u8, attr_code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    attr::encode::put_header(&mut out, attr_flags, attr_code, value.len());
    out.extend_from_slice(value);
    out
}

/// RFC 6793 §4.2.3: rebuild the real path and aggregator on a 2-octet session.
fn merge_as4(attrs: &mut PathAttributes, as4: As4Pending) {
    if let Some(agg) = attrs.aggregator {
        if agg.asn != AS_TRANS {
            // The aggregator is a 2-octet speaker after the 4-octet part of
            // the path: AS4_PATH and AS4_AGGREGATOR are stale.
            return;
        }
        if let Some(agg4) = as4.aggregator {
            attrs.aggregator = Some(agg4);
        }
    }
    if let (Some(path), Some(path4)) = (&attrs.as_path, &as4.path) {
        attrs.as_path = Some(path.merge_as4(path4));
    }
}

fn check_mandatory(update: &Update, ctx: &Context, problems: &mut Vec<Problem>) {
    if !update.has_reachable() || problems.iter().any(|p| p.action == Action::TreatAsWithdraw) {
        return;
    }
    let a = &update.attributes;
    let mut missing = Vec::new();
    if a.origin.is_none() {
        missing.push((code::ORIGIN, "ORIGIN"));
    }
    if a.as_path.is_none() {
        missing.push((code::AS_PATH, "AS_PATH"));
    }
    if !update.nlri.is_empty() && a.next_hop.is_none() {
        missing.push((code::NEXT_HOP, "NEXT_HOP"));
    }
    if !ctx.ebgp && a.local_pref.is_none() {
        missing.push((code::LOCAL_PREF, "LOCAL_PREF"));
    }
    for (attr_code, name) in missing {
        problems.push(Problem::new(
            Some(attr_code),
            Action::TreatAsWithdraw,
            format!("missing well-known attribute {name}"),
        ));
    }
}

enum MpFault {
    /// Not an error of the message, but nothing we will use (a family that
    /// was not negotiated).
    Ignore(String),
    Malformed {
        family: Option<Family>,
        reason: String,
    },
}

fn mp_family(r: &mut Reader<'_>) -> Option<Family> {
    Some(Family::new(Afi(r.u16()?), Safi(r.u8()?)))
}

fn decode_mp_reach(
    attr_flags: u8,
    value: &[u8],
    ctx: &Context,
) -> Result<Option<MpReach>, MpFault> {
    let mut r = Reader::new(value);
    let family = mp_family(&mut r);
    let malformed = |reason: String| MpFault::Malformed { family, reason };
    if attr_flags & flags::CATEGORY != flags::OPTIONAL_NON_TRANSITIVE {
        return Err(malformed(format!(
            "MP_REACH_NLRI flags {attr_flags:#04x} are not optional non-transitive"
        )));
    }
    if value.len() < 5 {
        return Err(malformed(format!(
            "MP_REACH_NLRI length {} (must be at least 5)",
            value.len()
        )));
    }
    let Some(family) = family else {
        return Err(malformed("MP_REACH_NLRI truncated".into()));
    };
    if !family.is_routable() || !ctx.negotiated(family) {
        return Err(MpFault::Ignore(format!(
            "MP_REACH_NLRI for {family}, which was not negotiated, ignored"
        )));
    }
    let nh_len = usize::from(r.u8().unwrap_or_default());
    let Some(nh) = r.take(nh_len) else {
        return Err(malformed(format!(
            "next hop length {nh_len} overruns MP_REACH_NLRI"
        )));
    };
    let next_hop = match (family.afi, nh_len) {
        (Afi::IPV4, 4) => NextHop::V4(Ipv4Addr::from(octets::<4>(nh))),
        (Afi::IPV6, 16) => NextHop::V6 {
            global: Ipv6Addr::from(octets::<16>(nh)),
            link_local: None,
        },
        (Afi::IPV6, 32) => NextHop::V6 {
            global: Ipv6Addr::from(octets::<16>(nh)),
            link_local: Some(Ipv6Addr::from(octets::<16>(
                nh.get(16..).unwrap_or_default(),
            ))),
        },
        (Afi::IPV4, 16 | 32) if ctx.extended_next_hop => NextHop::V6 {
            global: Ipv6Addr::from(octets::<16>(nh)),
            link_local: (nh_len == 32)
                .then(|| Ipv6Addr::from(octets::<16>(nh.get(16..).unwrap_or_default()))),
        },
        _ => {
            return Err(malformed(format!(
                "next hop length {nh_len} is not valid for {family}"
            )));
        }
    };
    // The one-octet Reserved field (formerly the SNPA count) is ignored.
    if r.u8().is_none() {
        return Err(malformed(
            "MP_REACH_NLRI ends before its reserved octet".into(),
        ));
    }
    let mut nlri = Vec::new();
    decode_nlri(
        r.rest(),
        family,
        ctx.add_path_receive.get(family),
        &mut nlri,
    )
    .map_err(|e: NlriError| malformed(format!("MP_REACH_NLRI NLRI: {e}")))?;
    Ok(Some(MpReach {
        family,
        next_hop,
        nlri,
    }))
}

fn decode_mp_unreach(
    attr_flags: u8,
    value: &[u8],
    ctx: &Context,
) -> Result<Option<MpUnreach>, MpFault> {
    let mut r = Reader::new(value);
    let family = mp_family(&mut r);
    let malformed = |reason: String| MpFault::Malformed { family, reason };
    if attr_flags & flags::CATEGORY != flags::OPTIONAL_NON_TRANSITIVE {
        return Err(malformed(format!(
            "MP_UNREACH_NLRI flags {attr_flags:#04x} are not optional non-transitive"
        )));
    }
    let Some(family) = family else {
        return Err(malformed(format!(
            "MP_UNREACH_NLRI length {} (must be at least 3)",
            value.len()
        )));
    };
    if !family.is_routable() || !ctx.negotiated(family) {
        return Err(MpFault::Ignore(format!(
            "MP_UNREACH_NLRI for {family}, which was not negotiated, ignored"
        )));
    }
    let mut nlri = Vec::new();
    decode_nlri(
        r.rest(),
        family,
        ctx.add_path_receive.get(family),
        &mut nlri,
    )
    .map_err(|e| malformed(format!("MP_UNREACH_NLRI NLRI: {e}")))?;
    Ok(Some(MpUnreach { family, nlri }))
}

fn octets<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(..N) {
        out.copy_from_slice(src);
    }
    out
}

// ===== encoding =====

fn encode_nlri_list(nlri: &[Nlri], add_path: bool, out: &mut Vec<u8>) {
    for n in nlri {
        if add_path {
            out.extend_from_slice(&n.path_id.unwrap_or(0).to_be_bytes());
        }
        n.prefix.encode(out);
    }
}

pub(crate) fn encode_mp_reach(
    mp: &MpReach,
    attr_flags: Option<u8>,
    ctx: &Context,
    out: &mut Vec<u8>,
) {
    let add_path = ctx.add_path_send.get(mp.family);
    let nlri_len: usize = mp
        .nlri
        .iter()
        .map(|n| n.prefix.wire_len() + if add_path { 4 } else { 0 })
        .sum();
    let len = 5 + mp.next_hop.wire_len() + nlri_len;
    attr::encode::put_header(
        out,
        attr_flags.unwrap_or(flags::OPTIONAL_NON_TRANSITIVE),
        code::MP_REACH_NLRI,
        len,
    );
    out.extend_from_slice(&mp.family.afi.0.to_be_bytes());
    out.push(mp.family.safi.0);
    out.push(mp.next_hop.wire_len() as u8);
    mp.next_hop.encode(out);
    out.push(0);
    encode_nlri_list(&mp.nlri, add_path, out);
}

pub(crate) fn encode_mp_unreach(
    mp: &MpUnreach,
    attr_flags: Option<u8>,
    ctx: &Context,
    out: &mut Vec<u8>,
) {
    let add_path = ctx.add_path_send.get(mp.family);
    let nlri_len: usize = mp
        .nlri
        .iter()
        .map(|n| n.prefix.wire_len() + if add_path { 4 } else { 0 })
        .sum();
    attr::encode::put_header(
        out,
        attr_flags.unwrap_or(flags::OPTIONAL_NON_TRANSITIVE),
        code::MP_UNREACH_NLRI,
        3 + nlri_len,
    );
    out.extend_from_slice(&mp.family.afi.0.to_be_bytes());
    out.push(mp.family.safi.0);
    encode_nlri_list(&mp.nlri, add_path, out);
}

impl Update {
    /// Encode the path attribute field: arrival layout first (so received
    /// sets re-encode byte for byte), then anything else in canonical order
    /// with MP_REACH/MP_UNREACH first, as RFC 7606 §5.1 asks of senders.
    pub(crate) fn encode_attributes(&self, ctx: &Context, out: &mut Vec<u8>) {
        let attrs = &self.attributes;
        let mut written = [false; 256];
        let emit =
            |code: u8, slot_flags: Option<u8>, out: &mut Vec<u8>, written: &mut [bool; 256]| {
                let idx = usize::from(code);
                if written.get(idx).copied().unwrap_or(true) {
                    return;
                }
                let did = match code {
                    code::MP_REACH_NLRI => self
                        .mp_reach
                        .as_ref()
                        .map(|m| encode_mp_reach(m, slot_flags, ctx, out))
                        .is_some(),
                    code::MP_UNREACH_NLRI => self
                        .mp_unreach
                        .as_ref()
                        .map(|m| encode_mp_unreach(m, slot_flags, ctx, out))
                        .is_some(),
                    _ => attr::encode_attribute(attrs, code, ctx.four_octet_as, slot_flags, out),
                };
                if let (true, Some(w)) = (did, written.get_mut(idx)) {
                    *w = true;
                }
            };
        for slot in &attrs.layout {
            emit(slot.code, Some(slot.flags), out, &mut written);
        }
        emit(code::MP_REACH_NLRI, None, out, &mut written);
        emit(code::MP_UNREACH_NLRI, None, out, &mut written);
        let mut codes = Vec::with_capacity(16);
        attrs.present_codes(ctx.four_octet_as, &mut codes);
        for code in codes {
            emit(code, None, out, &mut written);
        }
    }

    /// Encode the whole message, header included.
    pub fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        write_header(out, MessageType::Update, 0);
        let v4_add_path = ctx.add_path_send.get(Family::IPV4_UNICAST);
        let wd_start = out.len();
        out.extend_from_slice(&[0, 0]);
        encode_nlri_list(&self.withdrawn, v4_add_path, out);
        let wd_len = out.len() - wd_start - 2;
        let attr_start = out.len();
        out.extend_from_slice(&[0, 0]);
        self.encode_attributes(ctx, out);
        let attr_len = out.len() - attr_start - 2;
        encode_nlri_list(&self.nlri, v4_add_path, out);
        let total = out.len() - start;
        if total > ctx.max_message_len() {
            out.truncate(start);
            return Err(EncodeError::TooLarge(
                "UPDATE exceeds the session's maximum message length",
            ));
        }
        if let Some(f) = out.get_mut(wd_start..wd_start + 2) {
            f.copy_from_slice(&(wd_len as u16).to_be_bytes());
        }
        if let Some(f) = out.get_mut(attr_start..attr_start + 2) {
            f.copy_from_slice(&(attr_len as u16).to_be_bytes());
        }
        patch_len(out, start, total as u16);
        debug_assert!(total >= HEADER_LEN);
        Ok(())
    }
}
