//! GGUF metadata values: the 13 value types, scalars and (nested) arrays.
//!
//! Type ids follow ggml/include/gguf.h (`enum gguf_type`).

use serde::ser::Serializer;
use serde::Serialize;

/// A GGUF metadata value type (`enum gguf_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgufValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl GgufValueType {
    /// All 13 types in id order.
    pub const ALL: [GgufValueType; 13] = [
        GgufValueType::U8,
        GgufValueType::I8,
        GgufValueType::U16,
        GgufValueType::I16,
        GgufValueType::U32,
        GgufValueType::I32,
        GgufValueType::F32,
        GgufValueType::Bool,
        GgufValueType::String,
        GgufValueType::Array,
        GgufValueType::U64,
        GgufValueType::I64,
        GgufValueType::F64,
    ];

    /// The id stored in the file.
    pub const fn id(self) -> u32 {
        match self {
            GgufValueType::U8 => 0,
            GgufValueType::I8 => 1,
            GgufValueType::U16 => 2,
            GgufValueType::I16 => 3,
            GgufValueType::U32 => 4,
            GgufValueType::I32 => 5,
            GgufValueType::F32 => 6,
            GgufValueType::Bool => 7,
            GgufValueType::String => 8,
            GgufValueType::Array => 9,
            GgufValueType::U64 => 10,
            GgufValueType::I64 => 11,
            GgufValueType::F64 => 12,
        }
    }

    /// The type for an id, or `None` for an unknown id.
    pub fn from_id(id: u32) -> Option<GgufValueType> {
        GgufValueType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The name gguf-py uses (`GGUFValueType` member names).
    pub const fn name(self) -> &'static str {
        match self {
            GgufValueType::U8 => "UINT8",
            GgufValueType::I8 => "INT8",
            GgufValueType::U16 => "UINT16",
            GgufValueType::I16 => "INT16",
            GgufValueType::U32 => "UINT32",
            GgufValueType::I32 => "INT32",
            GgufValueType::F32 => "FLOAT32",
            GgufValueType::Bool => "BOOL",
            GgufValueType::String => "STRING",
            GgufValueType::Array => "ARRAY",
            GgufValueType::U64 => "UINT64",
            GgufValueType::I64 => "INT64",
            GgufValueType::F64 => "FLOAT64",
        }
    }

    /// Bytes of one value of a fixed-size type; `None` for STRING and ARRAY.
    pub const fn fixed_size(self) -> Option<usize> {
        match self {
            GgufValueType::U8 | GgufValueType::I8 | GgufValueType::Bool => Some(1),
            GgufValueType::U16 | GgufValueType::I16 => Some(2),
            GgufValueType::U32 | GgufValueType::I32 | GgufValueType::F32 => Some(4),
            GgufValueType::U64 | GgufValueType::I64 | GgufValueType::F64 => Some(8),
            GgufValueType::String | GgufValueType::Array => None,
        }
    }

    /// The fewest bytes one value of this type can occupy in a file: a string is at least its
    /// u64 length, an array at least its i32 element type and u64 count.
    pub const fn min_encoded_size(self) -> usize {
        match self.fixed_size() {
            Some(n) => n,
            None => match self {
                GgufValueType::String => 8,
                _ => 12,
            },
        }
    }
}

impl std::fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(GgufArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    /// This value's type.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            GgufValue::U8(_) => GgufValueType::U8,
            GgufValue::I8(_) => GgufValueType::I8,
            GgufValue::U16(_) => GgufValueType::U16,
            GgufValue::I16(_) => GgufValueType::I16,
            GgufValue::U32(_) => GgufValueType::U32,
            GgufValue::I32(_) => GgufValueType::I32,
            GgufValue::F32(_) => GgufValueType::F32,
            GgufValue::Bool(_) => GgufValueType::Bool,
            GgufValue::String(_) => GgufValueType::String,
            GgufValue::Array(_) => GgufValueType::Array,
            GgufValue::U64(_) => GgufValueType::U64,
            GgufValue::I64(_) => GgufValueType::I64,
            GgufValue::F64(_) => GgufValueType::F64,
        }
    }

    /// A short type description for error messages: `UINT32`, or `ARRAY[STRING]`.
    pub fn type_description(&self) -> String {
        match self {
            GgufValue::Array(a) => a.type_description(),
            other => other.value_type().name().to_string(),
        }
    }

    /// The value as an unsigned integer when it is a non-negative integer of any width.
    pub fn as_u64_lenient(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// A homogeneous array. Elements are stored typed (not as `Vec<GgufValue>`) so memory stays
/// proportional to the file's bytes; nested arrays are `Array(Vec<GgufArray>)`.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<GgufArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl GgufArray {
    /// The element type.
    pub fn element_type(&self) -> GgufValueType {
        match self {
            GgufArray::U8(_) => GgufValueType::U8,
            GgufArray::I8(_) => GgufValueType::I8,
            GgufArray::U16(_) => GgufValueType::U16,
            GgufArray::I16(_) => GgufValueType::I16,
            GgufArray::U32(_) => GgufValueType::U32,
            GgufArray::I32(_) => GgufValueType::I32,
            GgufArray::F32(_) => GgufValueType::F32,
            GgufArray::Bool(_) => GgufValueType::Bool,
            GgufArray::String(_) => GgufValueType::String,
            GgufArray::Array(_) => GgufValueType::Array,
            GgufArray::U64(_) => GgufValueType::U64,
            GgufArray::I64(_) => GgufValueType::I64,
            GgufArray::F64(_) => GgufValueType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            GgufArray::U8(v) => v.len(),
            GgufArray::I8(v) => v.len(),
            GgufArray::U16(v) => v.len(),
            GgufArray::I16(v) => v.len(),
            GgufArray::U32(v) => v.len(),
            GgufArray::I32(v) => v.len(),
            GgufArray::F32(v) => v.len(),
            GgufArray::Bool(v) => v.len(),
            GgufArray::String(v) => v.len(),
            GgufArray::Array(v) => v.len(),
            GgufArray::U64(v) => v.len(),
            GgufArray::I64(v) => v.len(),
            GgufArray::F64(v) => v.len(),
        }
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `ARRAY[UINT32]`, `ARRAY[ARRAY]` (inner types may differ per element).
    pub fn type_description(&self) -> String {
        format!("ARRAY[{}]", self.element_type().name())
    }

    /// Element `i` as a scalar value (`None` past the end).
    pub fn get(&self, i: usize) -> Option<GgufValue> {
        Some(match self {
            GgufArray::U8(v) => GgufValue::U8(*v.get(i)?),
            GgufArray::I8(v) => GgufValue::I8(*v.get(i)?),
            GgufArray::U16(v) => GgufValue::U16(*v.get(i)?),
            GgufArray::I16(v) => GgufValue::I16(*v.get(i)?),
            GgufArray::U32(v) => GgufValue::U32(*v.get(i)?),
            GgufArray::I32(v) => GgufValue::I32(*v.get(i)?),
            GgufArray::F32(v) => GgufValue::F32(*v.get(i)?),
            GgufArray::Bool(v) => GgufValue::Bool(*v.get(i)?),
            GgufArray::String(v) => GgufValue::String(v.get(i)?.clone()),
            GgufArray::Array(v) => GgufValue::Array(v.get(i)?.clone()),
            GgufArray::U64(v) => GgufValue::U64(*v.get(i)?),
            GgufArray::I64(v) => GgufValue::I64(*v.get(i)?),
            GgufArray::F64(v) => GgufValue::F64(*v.get(i)?),
        })
    }
}

/// JSON form: scalars as plain JSON values (floats as numbers, non-finite ones as strings
/// `"NaN"`, `"inf"`, `"-inf"`), arrays as JSON arrays.
impl Serialize for GgufValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GgufValue::U8(v) => s.serialize_u8(*v),
            GgufValue::I8(v) => s.serialize_i8(*v),
            GgufValue::U16(v) => s.serialize_u16(*v),
            GgufValue::I16(v) => s.serialize_i16(*v),
            GgufValue::U32(v) => s.serialize_u32(*v),
            GgufValue::I32(v) => s.serialize_i32(*v),
            // Finite f32 as f32, so JSON shows its shortest form (0.1, not 0.10000000149011612).
            GgufValue::F32(v) if v.is_finite() => s.serialize_f32(*v),
            GgufValue::F32(v) => serialize_float(f64::from(*v), s),
            GgufValue::Bool(v) => s.serialize_bool(*v),
            GgufValue::String(v) => s.serialize_str(v),
            GgufValue::Array(a) => a.serialize(s),
            GgufValue::U64(v) => s.serialize_u64(*v),
            GgufValue::I64(v) => s.serialize_i64(*v),
            GgufValue::F64(v) => serialize_float(*v, s),
        }
    }
}

fn serialize_float<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(v)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else if v > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

impl Serialize for GgufArray {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for i in 0..self.len() {
            if let Some(v) = self.get(i) {
                seq.serialize_element(&v)?;
            }
        }
        seq.end()
    }
}
