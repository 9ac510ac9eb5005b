//! AS_PATH and AS4_PATH (RFC 4271 §5.1.2, RFC 6793, RFC 5065, RFC 7607).

use std::fmt;

use crate::AS_TRANS;

/// Most ASNs one segment can hold; longer runs are split on encode.
pub const MAX_SEGMENT_ASNS: usize = 255;

/// Segment types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentType {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

impl SegmentType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Set,
            2 => Self::Sequence,
            3 => Self::ConfedSequence,
            4 => Self::ConfedSet,
            _ => return None,
        })
    }

    pub fn is_confed(self) -> bool {
        matches!(self, Self::ConfedSequence | Self::ConfedSet)
    }
}

/// One path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    pub kind: SegmentType,
    pub asns: Vec<u32>,
}

/// An AS path: a list of segments, the first the most recently prepended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsPath {
    pub segments: Vec<Segment>,
}

/// Why an AS_PATH or AS4_PATH was malformed (RFC 7606 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AsPathError {
    #[error("unknown segment type {0}")]
    UnknownSegmentType(u8),
    #[error("segment of length zero")]
    EmptySegment,
    #[error("segment overruns the attribute")]
    Overrun,
    #[error("AS number 0 in the path (RFC 7607)")]
    ZeroAsn,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty for a locally originated route).
    pub fn from_sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![Segment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.asns.is_empty())
    }

    /// Path length for best-path selection (RFC 4271 §9.1.2.2): each AS in
    /// a sequence counts one, a whole set counts one, confederation
    /// segments count nothing (RFC 5065 §5.3).
    pub fn len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                _ => 0,
            })
            .sum()
    }

    /// The AS the route was last received from outside a confederation: the
    /// first AS of the first non-confederation segment.
    pub fn first_asn(&self) -> Option<u32> {
        let seg = self.segments.iter().find(|s| !s.kind.is_confed())?;
        match seg.kind {
            SegmentType::Sequence => seg.asns.first().copied(),
            _ => None,
        }
    }

    /// The originating AS: the last AS of the last segment when it is a
    /// sequence.
    pub fn origin_asn(&self) -> Option<u32> {
        let seg = self.segments.last()?;
        (seg.kind == SegmentType::Sequence)
            .then(|| seg.asns.last().copied())
            .flatten()
    }

    /// How often `asn` appears anywhere in the path (loop detection).
    pub fn count(&self, asn: u32) -> usize {
        self.segments
            .iter()
            .flat_map(|s| &s.asns)
            .filter(|&&a| a == asn)
            .count()
    }

    pub fn has_confed_segments(&self) -> bool {
        self.segments.iter().any(|s| s.kind.is_confed())
    }

    /// Prepend `asn` `times` times, merging into a leading sequence.
    pub fn prepend(&mut self, asn: u32, times: usize) {
        match self.segments.first_mut() {
            Some(seg) if seg.kind == SegmentType::Sequence => {
                seg.asns.splice(0..0, std::iter::repeat_n(asn, times));
            }
            _ => self.segments.insert(
                0,
                Segment {
                    kind: SegmentType::Sequence,
                    asns: vec![asn; times],
                },
            ),
        }
    }

    /// Decode segments with 2- or 4-octet ASNs.
    pub fn decode(mut value: &[u8], four_octet: bool) -> Result<Self, AsPathError> {
        let width = if four_octet { 4 } else { 2 };
        let mut segments = Vec::new();
        while let Some((&[kind, count], rest)) = value.split_first_chunk::<2>() {
            let kind = SegmentType::from_u8(kind).ok_or(AsPathError::UnknownSegmentType(kind))?;
            if count == 0 {
                return Err(AsPathError::EmptySegment);
            }
            let bytes = usize::from(count) * width;
            let (body, rest) = rest.split_at_checked(bytes).ok_or(AsPathError::Overrun)?;
            let asns: Vec<u32> = if four_octet {
                body.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                body.chunks_exact(2)
                    .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                    .collect()
            };
            if asns.contains(&0) {
                return Err(AsPathError::ZeroAsn);
            }
            segments.push(Segment { kind, asns });
            value = rest;
        }
        if !value.is_empty() {
            // A single octet left over cannot start a segment.
            return Err(AsPathError::Overrun);
        }
        Ok(Self { segments })
    }

    /// Encode with 4-octet ASNs, or with 2-octet ASNs where any ASN above
    /// 65535 becomes AS_TRANS. Segments over 255 ASNs are split.
    pub fn encode(&self, four_octet: bool, out: &mut Vec<u8>) {
        for seg in &self.segments {
            for chunk in seg.asns.chunks(MAX_SEGMENT_ASNS) {
                out.push(seg.kind as u8);
                out.push(chunk.len() as u8);
                for &asn in chunk {
                    if four_octet {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        let narrow = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
                        out.extend_from_slice(&narrow.to_be_bytes());
                    }
                }
            }
        }
    }

    /// Octets `encode` will produce.
    pub fn encoded_len(&self, four_octet: bool) -> usize {
        let width = if four_octet { 4 } else { 2 };
        self.segments
            .iter()
            .filter(|s| !s.asns.is_empty())
            .map(|s| s.asns.len().div_ceil(MAX_SEGMENT_ASNS) * 2 + s.asns.len() * width)
            .sum()
    }

    /// True if a 2-octet peer needs an AS4_PATH to see the real path.
    pub fn needs_as4_path(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.asns)
            .any(|&a| a > 0xffff)
    }

    /// The AS4_PATH to send beside a 2-octet AS_PATH: the same path without
    /// confederation segments (RFC 6793 §3).
    pub fn to_as4_path(&self) -> AsPath {
        Self {
            segments: self
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        }
    }

    /// Rebuild the real path from a 2-octet AS_PATH and an AS4_PATH
    /// (RFC 6793 §4.2.3). If AS4_PATH is longer than AS_PATH it is ignored.
    pub fn merge_as4(&self, as4: &AsPath) -> AsPath {
        let as4 = as4.to_as4_path();
        let (old_len, new_len) = (self.len(), as4.len());
        if old_len < new_len {
            return self.clone();
        }
        // Keep the leading (old_len - new_len) ASNs of AS_PATH, then AS4_PATH.
        let mut keep = old_len - new_len;
        let mut segments = Vec::new();
        for seg in &self.segments {
            if keep == 0 && !seg.kind.is_confed() {
                break;
            }
            match seg.kind {
                SegmentType::Sequence => {
                    let take = keep.min(seg.asns.len());
                    segments.push(Segment {
                        kind: seg.kind,
                        asns: seg.asns.get(..take).unwrap_or_default().to_vec(),
                    });
                    keep -= take;
                }
                SegmentType::Set => {
                    segments.push(seg.clone());
                    keep -= 1;
                }
                _ => segments.push(seg.clone()),
            }
        }
        segments.extend(as4.segments);
        AsPath { segments }.normalized()
    }

    /// Merge adjacent sequences that a split left behind.
    fn normalized(mut self) -> Self {
        let mut out: Vec<Segment> = Vec::with_capacity(self.segments.len());
        for seg in self.segments.drain(..) {
            if seg.asns.is_empty() {
                continue;
            }
            match out.last_mut() {
                Some(last)
                    if last.kind == SegmentType::Sequence
                        && seg.kind == SegmentType::Sequence
                        && last.asns.len() + seg.asns.len() <= MAX_SEGMENT_ASNS =>
                {
                    last.asns.extend(seg.asns)
                }
                _ => out.push(seg),
            }
        }
        Self { segments: out }
    }
}

impl fmt::Display for AsPath {
    /// BIRD/Cisco style: `64512 64513 {64514 64515} (65001)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close) = match seg.kind {
                SegmentType::Sequence => ("", ""),
                SegmentType::Set => ("{", "}"),
                SegmentType::ConfedSequence => ("(", ")"),
                SegmentType::ConfedSet => ("[", "]"),
            };
            f.write_str(open)?;
            for (i, asn) in seg.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{asn}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(asns: &[u32]) -> Segment {
        Segment {
            kind: SegmentType::Sequence,
            asns: asns.to_vec(),
        }
    }

    #[test]
    fn length_counts_sets_once_and_ignores_confeds() {
        let path = AsPath {
            segments: vec![
                Segment {
                    kind: SegmentType::ConfedSequence,
                    asns: vec![65001, 65002],
                },
                seq(&[64512, 64513]),
                Segment {
                    kind: SegmentType::Set,
                    asns: vec![1, 2, 3],
                },
            ],
        };
        assert_eq!(path.len(), 3);
        assert_eq!(path.first_asn(), Some(64512));
        assert_eq!(path.to_string(), "(65001 65002) 64512 64513 {1 2 3}");
    }

    #[test]
    fn long_sequences_split_at_255() {
        let path = AsPath::from_sequence(1..=300);
        let mut buf = Vec::new();
        path.encode(true, &mut buf);
        assert_eq!(buf.len(), path.encoded_len(true));
        assert_eq!(&buf[..2], &[2, 255]);
        assert_eq!(&buf[2 + 255 * 4..2 + 255 * 4 + 2], &[2, 45]);
        let back = AsPath::decode(&buf, true).expect("decodes");
        assert_eq!(back.len(), 300);
    }

    #[test]
    fn as4_reconstruction_rfc6793() {
        // A 2-octet speaker prepended 64512 in front of a path that carried
        // 4-octet ASNs: AS_PATH 64512 23456 23456, AS4_PATH 4200000000 4200000001.
        let two = AsPath::from_sequence([64512, AS_TRANS, AS_TRANS]);
        let four = AsPath::from_sequence([4_200_000_000, 4_200_000_001]);
        assert_eq!(
            two.merge_as4(&four),
            AsPath::from_sequence([64512, 4_200_000_000, 4_200_000_001])
        );
        // An AS4_PATH longer than AS_PATH is ignored.
        let long = AsPath::from_sequence([1, 2, 3, 4]);
        assert_eq!(two.merge_as4(&long), two);
    }

    #[test]
    fn malformed_paths() {
        assert_eq!(
            AsPath::decode(&[5, 1, 0, 1], false),
            Err(AsPathError::UnknownSegmentType(5))
        );
        assert_eq!(
            AsPath::decode(&[2, 0], false),
            Err(AsPathError::EmptySegment)
        );
        assert_eq!(
            AsPath::decode(&[2, 2, 0, 1], false),
            Err(AsPathError::Overrun)
        );
        assert_eq!(
            AsPath::decode(&[2, 1, 0, 1, 2], false),
            Err(AsPathError::Overrun)
        );
        assert_eq!(
            AsPath::decode(&[2, 1, 0, 0], false),
            Err(AsPathError::ZeroAsn)
        );
    }

    #[test]
    fn prepend_merges_into_leading_sequence() {
        let mut path = AsPath::from_sequence([64513]);
        path.prepend(64512, 2);
        assert_eq!(path, AsPath::from_sequence([64512, 64512, 64513]));
        let mut empty = AsPath::default();
        empty.prepend(64512, 1);
        assert_eq!(empty, AsPath::from_sequence([64512]));
    }
}
