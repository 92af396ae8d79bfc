//! The SPA parameters dmacam negotiates with: video formats (from the catalogue's `spa` codes), dma-buf
//! modifiers, buffer types and the header meta. PipeWire's convention for dma-bufs: a format that carries a
//! modifier (`SPA_FORMAT_VIDEO_modifier`) asks for dma-buf buffers of that layout; one without leaves the
//! memory type to the buffer negotiation (`SPA_PARAM_BUFFERS_dataType`), which is what cameras' v4l2 nodes
//! do (they export their own buffers as dma-bufs when the consumer takes them).

use std::io::Cursor;

use pipewire::spa;
use pipewire::spa::param::format::{FormatProperties, MediaSubtype, MediaType};
use pipewire::spa::param::video::VideoInfoRaw;
use pipewire::spa::param::ParamType;
use pipewire::spa::pod::serialize::PodSerializer;
use pipewire::spa::pod::{ChoiceValue, Object, Pod, Property, PropertyFlags, Value};
use pipewire::spa::utils::{
    Choice, ChoiceEnum, ChoiceFlags, Fraction as SpaFraction, Id, Rectangle, SpaTypes,
};

use crate::dmabuf::{Fourcc, DRM_FORMAT_MOD_LINEAR};
use crate::format::{PixelFormat, CATALOGUE};

/// Largest frame side a PipeWire stream may offer or take.
pub const MAX_SIDE: u32 = 16384;

/// Serialises a pod object into bytes [`Pod::from_bytes`] reads.
pub fn to_bytes(object: Object) -> Vec<u8> {
    PodSerializer::serialize(Cursor::new(Vec::new()), &Value::Object(object))
        .expect("serialising a pod object into memory cannot fail")
        .0
        .into_inner()
}

/// The pods of `bytes`, as the slice `pw_stream_connect` / `update_params` take.
pub fn pods(bytes: &[Vec<u8>]) -> Vec<&Pod> {
    bytes
        .iter()
        .map(|b| Pod::from_bytes(b).expect("a pod serialised by to_bytes"))
        .collect()
}

fn id_choice(values: &[u32]) -> Value {
    match values {
        [one] => Value::Id(Id(*one)),
        _ => Value::Choice(ChoiceValue::Id(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Enum {
                default: Id(values[0]),
                alternatives: values.iter().map(|&v| Id(v)).collect(),
            },
        ))),
    }
}

fn prop(key: u32, value: Value) -> Property {
    Property {
        key,
        flags: PropertyFlags::empty(),
        value,
    }
}

/// What a consumer asks of a format: the pixel format, size and rate when the command gave them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    pub fourcc: Option<Fourcc>,
    pub size: Option<(u32, u32)>,
    pub fps: Option<u32>,
}

/// The SPA video formats dmacam takes: the catalogue's capture formats with an SPA twin, `wanted`'s first.
pub fn spa_formats(wanted: Option<Fourcc>) -> Result<Vec<u32>, Fourcc> {
    match wanted {
        Some(f) => PixelFormat::lookup(f)
            .and_then(|p| p.spa)
            .map(|s| vec![s])
            .ok_or(f),
        None => {
            let mut v: Vec<u32> = CATALOGUE
                .iter()
                .filter(|p| p.capture && !p.multi_buffer)
                .filter_map(|p| p.spa)
                .collect();
            v.dedup();
            Ok(v)
        }
    }
}

/// A raw video `EnumFormat` object over `formats`; with `modifier`, one that carries that DRM modifier as a
/// mandatory property (dma-buf buffers of that layout only).
pub fn enum_format(formats: &[u32], wanted: &Wanted, modifier: Option<u64>) -> Object {
    let mut properties = vec![
        prop(
            FormatProperties::MediaType.as_raw(),
            Value::Id(Id(MediaType::Video.as_raw())),
        ),
        prop(
            FormatProperties::MediaSubtype.as_raw(),
            Value::Id(Id(MediaSubtype::Raw.as_raw())),
        ),
        prop(FormatProperties::VideoFormat.as_raw(), id_choice(formats)),
    ];
    if let Some(m) = modifier {
        properties.push(Property {
            key: FormatProperties::VideoModifier.as_raw(),
            flags: PropertyFlags::MANDATORY,
            value: Value::Choice(ChoiceValue::Long(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Enum {
                    default: m as i64,
                    alternatives: vec![m as i64],
                },
            ))),
        });
    }
    let size = match wanted.size {
        Some((w, h)) => Value::Rectangle(Rectangle {
            width: w,
            height: h,
        }),
        None => Value::Choice(ChoiceValue::Rectangle(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Range {
                default: Rectangle {
                    width: 640,
                    height: 480,
                },
                min: Rectangle {
                    width: 1,
                    height: 1,
                },
                max: Rectangle {
                    width: MAX_SIDE,
                    height: MAX_SIDE,
                },
            },
        ))),
    };
    properties.push(prop(FormatProperties::VideoSize.as_raw(), size));
    let rate = match wanted.fps {
        Some(n) => Value::Fraction(SpaFraction { num: n, denom: 1 }),
        None => Value::Choice(ChoiceValue::Fraction(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Range {
                default: SpaFraction { num: 30, denom: 1 },
                min: SpaFraction { num: 0, denom: 1 },
                max: SpaFraction {
                    num: 1000,
                    denom: 1,
                },
            },
        ))),
    };
    properties.push(prop(FormatProperties::VideoFramerate.as_raw(), rate));
    Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: ParamType::EnumFormat.as_raw(),
        properties,
    }
}

/// One fixed raw video format (what a producer offers of its one stream).
pub fn fixed_format(spa_format: u32, w: u32, h: u32, fps: (u32, u32)) -> Object {
    Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: ParamType::EnumFormat.as_raw(),
        properties: vec![
            prop(
                FormatProperties::MediaType.as_raw(),
                Value::Id(Id(MediaType::Video.as_raw())),
            ),
            prop(
                FormatProperties::MediaSubtype.as_raw(),
                Value::Id(Id(MediaSubtype::Raw.as_raw())),
            ),
            prop(
                FormatProperties::VideoFormat.as_raw(),
                Value::Id(Id(spa_format)),
            ),
            prop(
                FormatProperties::VideoSize.as_raw(),
                Value::Rectangle(Rectangle {
                    width: w,
                    height: h,
                }),
            ),
            prop(
                FormatProperties::VideoFramerate.as_raw(),
                Value::Fraction(SpaFraction {
                    num: fps.0,
                    denom: fps.1.max(1),
                }),
            ),
        ],
    }
}

/// The bit of `SPA_PARAM_BUFFERS_dataType` for a data type.
pub fn data_type_bit(t: spa::buffer::DataType) -> i32 {
    1 << t.as_raw()
}

/// A `Buffers` object: `count` buffers (a range when `min < max`) of `blocks` data each (when given), the data types
/// in `types` (a bit mask of [`data_type_bit`]s), with `size` and `stride` when the producer knows them.
pub fn buffers(
    (min, default, max): (u32, u32, u32),
    blocks: Option<u32>,
    types: i32,
    size_stride: Option<(u32, u32)>,
) -> Object {
    use spa::sys as s;
    let mut properties = vec![
        prop(
            s::SPA_PARAM_BUFFERS_buffers,
            if min == max {
                Value::Int(min as i32)
            } else {
                Value::Choice(ChoiceValue::Int(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Range {
                        default: default as i32,
                        min: min as i32,
                        max: max as i32,
                    },
                )))
            },
        ),
        prop(
            s::SPA_PARAM_BUFFERS_dataType,
            Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Flags {
                    default: types,
                    flags: vec![types],
                },
            ))),
        ),
    ];
    if let Some(blocks) = blocks {
        properties.push(prop(s::SPA_PARAM_BUFFERS_blocks, Value::Int(blocks as i32)));
    }
    if let Some((size, stride)) = size_stride {
        properties.push(prop(s::SPA_PARAM_BUFFERS_size, Value::Int(size as i32)));
        properties.push(prop(s::SPA_PARAM_BUFFERS_stride, Value::Int(stride as i32)));
    }
    Object {
        type_: SpaTypes::ObjectParamBuffers.as_raw(),
        id: ParamType::Buffers.as_raw(),
        properties,
    }
}

/// The header meta (sequence and timestamp per buffer).
pub fn header_meta() -> Object {
    use spa::sys as s;
    Object {
        type_: SpaTypes::ObjectParamMeta.as_raw(),
        id: ParamType::Meta.as_raw(),
        properties: vec![
            prop(s::SPA_PARAM_META_type, Value::Id(Id(s::SPA_META_Header))),
            prop(
                s::SPA_PARAM_META_size,
                Value::Int(std::mem::size_of::<s::spa_meta_header>() as i32),
            ),
        ],
    }
}

/// A negotiated raw video format, as dmacam reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The SPA video format.
    pub spa_format: u32,
    /// Its catalogue entry, if dmacam takes it.
    pub pixel: Option<PixelFormat>,
    pub width: u32,
    pub height: u32,
    /// Frames per second as a fraction (num, denom); (0, 1) when variable.
    pub framerate: (u32, u32),
    /// The DRM modifier the format carries, if any (dma-buf buffers only).
    pub modifier: Option<u64>,
    /// SPA colour matrix and range (`SPA_VIDEO_COLOR_MATRIX_*`, `SPA_VIDEO_COLOR_RANGE_*`), 0 = unknown.
    pub color_matrix: u32,
    pub color_range: u32,
}

impl Negotiated {
    /// Reads a `Format` param; `None` if it is not raw video.
    pub fn parse(pod: &Pod) -> Option<Negotiated> {
        let (media_type, media_subtype) = spa::param::format_utils::parse_format(pod).ok()?;
        if media_type != MediaType::Video || media_subtype != MediaSubtype::Raw {
            return None;
        }
        let mut info = VideoInfoRaw::new();
        info.parse(pod).ok()?;
        let fmt = info.format().as_raw();
        let size = info.size();
        let rate = info.framerate();
        Some(Negotiated {
            spa_format: fmt,
            pixel: PixelFormat::from_spa(fmt),
            width: size.width,
            height: size.height,
            framerate: (rate.num, rate.denom.max(1)),
            // (`VideoFlags::MODIFIER` needs a libspa feature Debian 12's headers cannot build.)
            modifier: (info.as_raw().flags & spa::sys::SPA_VIDEO_FLAG_MODIFIER != 0)
                .then(|| info.modifier()),
            color_matrix: info.color_matrix(),
            color_range: info.color_range(),
        })
    }

    /// Whether the producer's buffers must be dma-bufs of the linear layout.
    pub fn wants_linear_dmabuf(&self) -> bool {
        self.modifier == Some(DRM_FORMAT_MOD_LINEAR)
    }
}

/// The name of an SPA video format for messages (`YUY2`, `BGRx`), or its number.
pub fn spa_format_name(spa_format: u32) -> String {
    CATALOGUE
        .iter()
        .find(|p| p.spa == Some(spa_format))
        .map(|p| format!("{} (SPA video format {spa_format})", p.name()))
        .unwrap_or_else(|| format!("SPA video format {spa_format}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_captured_single_buffer_format_with_an_spa_twin_round_trips() {
        for p in CATALOGUE.iter().filter(|p| p.capture && !p.multi_buffer) {
            if let Some(s) = p.spa {
                assert_eq!(PixelFormat::from_spa(s).map(|q| q.fourcc), Some(p.fourcc));
            }
        }
        // The byte orders PipeWire names after memory order, as V4L2 does.
        let spa = |c: &[u8; 4]| PixelFormat::find(Fourcc::new(c)).unwrap().spa.unwrap();
        assert_eq!(spa(b"YUYV"), spa::sys::SPA_VIDEO_FORMAT_YUY2);
        assert_eq!(spa(b"XR24"), spa::sys::SPA_VIDEO_FORMAT_BGRx);
        assert_eq!(spa(b"RGB3"), spa::sys::SPA_VIDEO_FORMAT_RGB);
        assert_eq!(spa(b"YU12"), spa::sys::SPA_VIDEO_FORMAT_I420);
    }

    #[test]
    fn a_fixed_format_parses_back() {
        let bytes = to_bytes(fixed_format(
            spa::sys::SPA_VIDEO_FORMAT_YUY2,
            640,
            360,
            (30, 1),
        ));
        let n = Negotiated::parse(Pod::from_bytes(&bytes).unwrap()).unwrap();
        assert_eq!((n.width, n.height, n.framerate), (640, 360, (30, 1)));
        assert_eq!(n.pixel.map(|p| p.fourcc), Some(Fourcc::new(b"YUYV")));
        assert_eq!(n.modifier, None);
    }

    #[test]
    fn an_unknown_fourcc_is_refused() {
        assert!(spa_formats(Some(Fourcc::new(b"MJPG"))).is_err());
        assert!(spa_formats(None).unwrap().len() >= 10);
    }
}
