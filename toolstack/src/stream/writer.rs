//! [`StreamWriter`]: writes headers and records in Xen's format.

use std::io::Write;

use zerocopy::byteorder::{big_endian as be, little_endian as le};
use zerocopy::IntoBytes;

use super::error::{Part, StreamError, Where};
use super::io::Sink;
use super::records::{
    page_data_body_len, validate_page_data, write_page_data_body, DomainHeader, ImageHeader, Item,
    LibxcRecord, LibxlHeader, LibxlRecord, PageDataEntry, XlHeader,
};
use super::wire::{
    DomainHeaderWire, ImageHeaderWire, LibxlHeaderWire, RecordHeaderWire, XlHeaderWire,
};
use super::{
    libxc_type, padding_for, Layer, DHDR_PAGE_SHIFT, IHDR_ID, IHDR_MARKER, IHDR_VERSION,
    IHDR_VERSION_MIN, LIBXL_IDENT, LIBXL_OPT_LEGACY, LIBXL_VERSION, REC_LENGTH_MAX, XL_BYTEORDER,
    XL_HEADER_SIZE, XL_MAGIC, XL_OPTIONAL_DATA_MAX,
};

/// Writes an xl save file (or a bare libxl or libxc stream): headers and records, each
/// record padded with zeros to 8 bytes, lengths computed.
///
/// Every record is checked against its format before anything of it is written (PAGE_DATA
/// with 1..=1024 entries, 52-bit pfns and exactly one page of data per entry that carries
/// data; valid X86_PV_INFO pairs; the X86_PV_P2M_FRAMES count for its range; vCPU blob
/// sizes; record size limit); a violation is a [`StreamError`] and nothing is written.
/// Record order is the caller's business ([`StreamReader`](super::StreamReader) checks it).
///
/// The writer issues many small writes; give it a buffered writer.
#[derive(Debug)]
pub struct StreamWriter<W: Write> {
    sink: Sink<W>,
    /// Width from the last X86_PV_INFO written (for the P2M frame count); 8 until then.
    guest_width: u8,
}

impl<W: Write> StreamWriter<W> {
    /// A writer at offset 0 of `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            sink: Sink::new(inner),
            guest_width: 8,
        }
    }

    /// Bytes written so far (the offset the next header or record will have).
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.sink.offset()
    }

    /// The underlying writer.
    #[must_use]
    pub fn get_ref(&self) -> &W {
        self.sink.get_ref()
    }

    /// The underlying writer, mutably (writing to it directly desynchronises the offset).
    pub fn get_mut(&mut self) -> &mut W {
        self.sink.get_mut()
    }

    /// Unwraps the writer (without flushing).
    pub fn into_inner(self) -> W {
        self.sink.into_inner()
    }

    /// Flushes the underlying writer.
    ///
    /// # Errors
    /// [`StreamError::Io`].
    pub fn flush(&mut self) -> Result<(), StreamError> {
        let at = Where {
            layer: Layer::Libxl,
            part: Part::AfterEnd,
            offset: self.offset(),
        };
        self.sink.flush(at)
    }

    fn at(&self, layer: Layer, part: Part) -> Where {
        Where {
            layer,
            part,
            offset: self.offset(),
        }
    }

    /// Writes the xl save-file header and its config (mandatory flags STREAMv2, plus JSON
    /// if `config_is_json`).
    ///
    /// # Errors
    /// [`StreamError::XlOptionalDataTooLong`] for a config over 16 MiB; I/O errors.
    pub fn write_xl_header(&mut self, header: &XlHeader) -> Result<(), StreamError> {
        let at = self.at(Layer::Xl, Part::XlHeader);
        let optional_len = header.optional_data_len();
        if optional_len > u64::from(XL_OPTIONAL_DATA_MAX) {
            return Err(StreamError::XlOptionalDataTooLong {
                at: Where {
                    part: Part::XlOptionalData,
                    offset: at.offset + XL_HEADER_SIZE as u64,
                    ..at
                },
                len: optional_len,
                max: XL_OPTIONAL_DATA_MAX,
            });
        }
        let wire = XlHeaderWire {
            magic: XL_MAGIC,
            byteorder: le::U32::new(XL_BYTEORDER),
            mandatory_flags: le::U32::new(header.mandatory_flags()),
            optional_flags: le::U32::new(header.optional_flags),
            optional_data_len: le::U32::new(optional_len as u32),
        };
        self.sink.write_all(wire.as_bytes(), at)?;
        if let Some(config) = &header.config {
            let at = self.at(Layer::Xl, Part::XlOptionalData);
            self.sink
                .write_all(&(config.len() as u32).to_le_bytes(), at)?;
            self.sink.write_all(config, at)?;
        }
        Ok(())
    }

    /// Writes the libxl stream header (version 2, little-endian).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_libxl_header(&mut self, header: &LibxlHeader) -> Result<(), StreamError> {
        let at = self.at(Layer::Libxl, Part::LibxlHeader);
        let wire = LibxlHeaderWire {
            ident: be::U64::new(LIBXL_IDENT),
            version: be::U32::new(LIBXL_VERSION),
            options: be::U32::new(if header.legacy { LIBXL_OPT_LEGACY } else { 0 }),
        };
        self.sink.write_all(wire.as_bytes(), at)
    }

    /// Writes a libxl record. After [`LibxlRecord::LibxcContext`] the caller writes the
    /// libxc stream (image header, domain header, records, END).
    ///
    /// # Errors
    /// [`StreamError::UnknownMandatoryRecord`] for an `Unknown` without the optional
    /// bit; [`StreamError::RecordTooLong`]; I/O errors.
    pub fn write_libxl_record(&mut self, record: &LibxlRecord) -> Result<(), StreamError> {
        let at = self.at(Layer::Libxl, Part::Record(record.type_()));
        record.validate(at)?;
        let length = record.body_len();
        self.write_record_header(record.type_(), length, at)?;
        record.write_body(&mut self.sink, at)?;
        self.sink.write_zeros(padding_for(length), at)
    }

    /// Writes the libxc image header.
    ///
    /// # Errors
    /// [`StreamError::LibxcBadVersion`] for a version other than 2 or 3; I/O errors.
    pub fn write_image_header(&mut self, header: &ImageHeader) -> Result<(), StreamError> {
        let at = self.at(Layer::Libxc, Part::ImageHeader);
        if !(IHDR_VERSION_MIN..=IHDR_VERSION).contains(&header.version) {
            return Err(StreamError::LibxcBadVersion {
                at,
                found: header.version,
            });
        }
        let wire = ImageHeaderWire {
            marker: be::U64::new(IHDR_MARKER),
            id: be::U32::new(IHDR_ID),
            version: be::U32::new(header.version),
            options: be::U16::new(0),
            reserved1: be::U16::new(0),
            reserved2: be::U32::new(0),
        };
        self.sink.write_all(wire.as_bytes(), at)
    }

    /// Writes the libxc domain header (page_shift 12).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_domain_header(&mut self, header: &DomainHeader) -> Result<(), StreamError> {
        let at = self.at(Layer::Libxc, Part::DomainHeader);
        let wire = DomainHeaderWire {
            domain_type: le::U32::new(header.domain_type.raw()),
            page_shift: le::U16::new(DHDR_PAGE_SHIFT),
            reserved: le::U16::new(0),
            xen_major: le::U32::new(header.xen_major),
            xen_minor: le::U32::new(header.xen_minor),
        };
        self.sink.write_all(wire.as_bytes(), at)
    }

    /// Writes a libxc record.
    ///
    /// # Errors
    /// The record's format violation (see the type docs), or I/O errors.
    pub fn write_libxc_record(&mut self, record: &LibxcRecord) -> Result<(), StreamError> {
        let at = self.at(Layer::Libxc, Part::Record(record.type_()));
        record.validate(at, self.guest_width)?;
        if let LibxcRecord::X86PvInfo(info) = record {
            self.guest_width = info.guest_width;
        }
        let length = record.body_len();
        self.write_record_header(record.type_(), length, at)?;
        record.write_body(&mut self.sink, at)?;
        self.sink.write_zeros(padding_for(length), at)
    }

    /// Writes a PAGE_DATA record from borrowed entries and page data (what save uses, so
    /// the batch buffer is not copied into a [`PageData`](super::PageData)).
    ///
    /// # Errors
    /// [`StreamError::PageDataCount`], [`StreamError::PfnTooLarge`],
    /// [`StreamError::PageDataMismatch`], or I/O errors.
    pub fn write_page_data(
        &mut self,
        entries: &[PageDataEntry],
        data: &[u8],
    ) -> Result<(), StreamError> {
        let at = self.at(Layer::Libxc, Part::Record(libxc_type::PAGE_DATA));
        validate_page_data(entries, data, at)?;
        let length = page_data_body_len(entries, data);
        self.write_record_header(libxc_type::PAGE_DATA, length, at)?;
        write_page_data_body(entries, data, &mut self.sink, at)?;
        // The body is always a multiple of 8; kept for symmetry.
        self.sink.write_zeros(padding_for(length), at)
    }

    /// Writes any item.
    ///
    /// # Errors
    /// As the specific `write_*` method.
    pub fn write_item(&mut self, item: &Item) -> Result<(), StreamError> {
        match item {
            Item::XlHeader(h) => self.write_xl_header(h),
            Item::LibxlHeader(h) => self.write_libxl_header(h),
            Item::Libxl(r) => self.write_libxl_record(r),
            Item::ImageHeader(h) => self.write_image_header(h),
            Item::DomainHeader(h) => self.write_domain_header(h),
            Item::Libxc(r) => self.write_libxc_record(r),
        }
    }

    fn write_record_header(&mut self, ty: u32, length: u64, at: Where) -> Result<(), StreamError> {
        if length + padding_for(length) > u64::from(REC_LENGTH_MAX) {
            return Err(StreamError::RecordTooLong {
                at,
                length,
                max: REC_LENGTH_MAX,
            });
        }
        let wire = RecordHeaderWire {
            ty: le::U32::new(ty),
            length: le::U32::new(length as u32),
        };
        self.sink.write_all(wire.as_bytes(), at)
    }

    /// Writes a record header and body without any checks (tests build malformed
    /// streams with it).
    #[cfg(test)]
    pub(crate) fn write_raw_record(
        &mut self,
        layer: Layer,
        ty: u32,
        length: u32,
        body: &[u8],
        padding: &[u8],
    ) -> Result<(), StreamError> {
        let at = self.at(layer, Part::Record(ty));
        let wire = RecordHeaderWire {
            ty: le::U32::new(ty),
            length: le::U32::new(length),
        };
        self.sink.write_all(wire.as_bytes(), at)?;
        self.sink.write_all(body, at)?;
        self.sink.write_all(padding, at)
    }
}
