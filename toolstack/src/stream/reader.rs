//! [`StreamReader`]: a streaming reader that checks everything Xen's readers check.

use std::io::Read;

use super::error::{OrderRule, Part, StreamError, Where};
use super::io::Src;
use super::records::{
    DecodeCtx, DomainHeader, DomainType, ImageHeader, Item, LibxcRecord, LibxlHeader, LibxlRecord,
    Located, X86PvInfo, XlHeader,
};
use super::wire::{
    DomainHeaderWire, ImageHeaderWire, LibxlHeaderWire, RecordHeaderWire, XlHeaderWire,
};
use super::{
    libxc_type as xc, libxl_type as xl, padding_for, Layer, StreamFormat, DHDR_PAGE_SHIFT,
    DHDR_TYPE_X86_PV, IHDR_ID, IHDR_MARKER, IHDR_OPT_BIG_ENDIAN, IHDR_VERSION, IHDR_VERSION_MIN,
    LIBXL_IDENT, LIBXL_OPT_BIG_ENDIAN, LIBXL_OPT_LEGACY, LIBXL_VERSION, PAGE_DATA_PFN_MASK,
    REC_LENGTH_MAX, REC_TYPE_OPTIONAL, XL_BYTEORDER, XL_HEADER_SIZE, XL_MAGIC,
    XL_MANDATORY_FLAGS_KNOWN, XL_MANDATORY_FLAG_JSON, XL_MANDATORY_FLAG_STREAMV2,
    XL_OPTIONAL_DATA_MAX,
};

/// How to read a stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderOptions {
    /// Which header comes first.
    pub format: StreamFormat,
    /// Read a checkpointed (Remus/COLO) stream: libxc CHECKPOINT hands over to libxl
    /// records up to CHECKPOINT_END, then libxc records resume. Off: CHECKPOINT is an
    /// error, as in libxc's plain restore.
    pub checkpointed: bool,
    /// Reject non-zero record padding (as `verify-stream-v2` does; libxc and libxl do
    /// not check it).
    pub require_zero_padding: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    XlHeader,
    LibxlHeader,
    LibxlRecords,
    ImageHeader,
    DomainHeader,
    LibxcRecords,
    Done,
    Failed,
}

/// What the libxc record-order rules need to remember.
#[derive(Debug, Default)]
struct LibxcState {
    version: u32,
    pv_info: Option<X86PvInfo>,
    cpuid_policy: bool,
    msr_policy: bool,
    static_data_end: bool,
    static_data_end_inferred: bool,
    max_pfn: Option<u64>,
    page_data: bool,
    /// TSC/SHARED_INFO/vCPU records seen since the last CHECKPOINT (or the start).
    in_tail: bool,
    vcpu0_basic: bool,
}

/// Reads a stream item by item without holding more than one record in memory.
///
/// Items come out in file order: the xl header, the libxl header, libxl records; after
/// LIBXC_CONTEXT the libxc image and domain headers and libxc records up to END; then
/// libxl records again up to END. Any violation is a [`StreamError`] naming the layer,
/// record type and offset; after an error (or the final END) the reader yields nothing.
///
/// The reader also implements [`Iterator`].
#[derive(Debug)]
pub struct StreamReader<R> {
    src: Src<R>,
    opts: ReaderOptions,
    phase: Phase,
    libxc_started: bool,
    in_checkpoint: bool,
    xc: LibxcState,
}

impl<R: Read> StreamReader<R> {
    /// A reader for an `xl save` file with default options.
    pub fn new(inner: R) -> Self {
        Self::with_options(inner, ReaderOptions::default())
    }

    /// A reader with the given options.
    pub fn with_options(inner: R, opts: ReaderOptions) -> Self {
        let phase = match opts.format {
            StreamFormat::Xl => Phase::XlHeader,
            StreamFormat::Libxl => Phase::LibxlHeader,
            StreamFormat::Libxc => Phase::ImageHeader,
        };
        Self {
            src: Src::new(inner, 0),
            opts,
            phase,
            libxc_started: false,
            in_checkpoint: false,
            xc: LibxcState::default(),
        }
    }

    /// Bytes consumed so far.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.src.offset()
    }

    /// Whether the stream is a v2 libxc stream whose STATIC_DATA_END was inferred at the
    /// first X86_PV_P2M_FRAMES (as libxc does).
    #[must_use]
    pub fn static_data_end_inferred(&self) -> bool {
        self.xc.static_data_end_inferred
    }

    /// Whether the final END has been read (and nothing followed it).
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The underlying reader.
    #[must_use]
    pub fn get_ref(&self) -> &R {
        self.src.get_ref()
    }

    /// Unwraps the reader.
    pub fn into_inner(self) -> R {
        self.src.into_inner()
    }

    /// Largest buffer the reader has reserved so far.
    #[cfg(test)]
    pub(crate) fn max_reserved(&self) -> usize {
        self.src.max_reserved
    }

    /// The next header or record, or `None` after the final END.
    ///
    /// # Errors
    /// Any [`StreamError`]; the reader yields nothing afterwards.
    pub fn next_item(&mut self) -> Result<Option<Located<Item>>, StreamError> {
        let offset = self.src.offset();
        let result = match self.phase {
            Phase::Done | Phase::Failed => return Ok(None),
            Phase::XlHeader => self.read_xl_header().map(Item::XlHeader),
            Phase::LibxlHeader => self.read_libxl_header().map(Item::LibxlHeader),
            Phase::ImageHeader => self.read_image_header().map(Item::ImageHeader),
            Phase::DomainHeader => self.read_domain_header().map(Item::DomainHeader),
            Phase::LibxlRecords => self.read_libxl_record().map(Item::Libxl),
            Phase::LibxcRecords => self.read_libxc_record().map(Item::Libxc),
        };
        match result {
            Ok(item) => Ok(Some(Located { offset, item })),
            Err(e) => {
                self.phase = Phase::Failed;
                Err(e)
            }
        }
    }

    fn here(&self, layer: Layer, part: Part) -> Where {
        Where {
            layer,
            part,
            offset: self.src.offset(),
        }
    }

    fn read_xl_header(&mut self) -> Result<XlHeader, StreamError> {
        let at = self.here(Layer::Xl, Part::XlHeader);
        let wire: XlHeaderWire = self.src.read_struct(at)?;
        if wire.magic != XL_MAGIC {
            return Err(StreamError::XlBadMagic {
                at,
                found: wire.magic,
            });
        }
        let byteorder = wire.byteorder.get();
        if byteorder != XL_BYTEORDER {
            return Err(StreamError::XlByteOrder {
                at,
                found: byteorder,
            });
        }
        let flags = wire.mandatory_flags.get();
        if flags & !XL_MANDATORY_FLAGS_KNOWN != 0 {
            return Err(StreamError::XlUnknownMandatoryFlags {
                at,
                flags: flags & !XL_MANDATORY_FLAGS_KNOWN,
            });
        }
        if flags & XL_MANDATORY_FLAG_STREAMV2 == 0 {
            return Err(StreamError::XlLegacyStream { at, flags });
        }
        let optional_data_len = wire.optional_data_len.get();
        let at = Where {
            part: Part::XlOptionalData,
            offset: at.offset + XL_HEADER_SIZE as u64,
            ..at
        };
        if optional_data_len > XL_OPTIONAL_DATA_MAX {
            return Err(StreamError::XlOptionalDataTooLong {
                at,
                len: u64::from(optional_data_len),
                max: XL_OPTIONAL_DATA_MAX,
            });
        }
        let config = if optional_data_len == 0 {
            None
        } else {
            if optional_data_len < 4 {
                return Err(StreamError::XlConfigLength {
                    at,
                    optional_data_len,
                    config_len: None,
                });
            }
            let mut len = [0u8; 4];
            self.src.read_exact(&mut len, at)?;
            let config_len = u32::from_le_bytes(len);
            if config_len > optional_data_len - 4 {
                return Err(StreamError::XlConfigLength {
                    at,
                    optional_data_len,
                    config_len: Some(config_len),
                });
            }
            let config = self.src.read_vec(config_len as usize, 0, at)?;
            // xl skips optional data it does not understand.
            self.src
                .skip(u64::from(optional_data_len - 4 - config_len), at)?;
            Some(config)
        };
        self.phase = Phase::LibxlHeader;
        Ok(XlHeader {
            config_is_json: flags & XL_MANDATORY_FLAG_JSON != 0,
            optional_flags: wire.optional_flags.get(),
            config,
        })
    }

    fn read_libxl_header(&mut self) -> Result<LibxlHeader, StreamError> {
        let at = self.here(Layer::Libxl, Part::LibxlHeader);
        let wire: LibxlHeaderWire = self.src.read_struct(at)?;
        let ident = wire.ident.get();
        if ident != LIBXL_IDENT {
            return Err(StreamError::LibxlBadIdent { at, found: ident });
        }
        let version = wire.version.get();
        if version != LIBXL_VERSION {
            return Err(StreamError::LibxlBadVersion { at, found: version });
        }
        let options = wire.options.get();
        if options & LIBXL_OPT_BIG_ENDIAN != 0 {
            return Err(StreamError::BigEndian { at });
        }
        let reserved = options & !(LIBXL_OPT_BIG_ENDIAN | LIBXL_OPT_LEGACY);
        if reserved != 0 {
            return Err(StreamError::ReservedOptions { at, bits: reserved });
        }
        self.phase = Phase::LibxlRecords;
        Ok(LibxlHeader {
            legacy: options & LIBXL_OPT_LEGACY != 0,
        })
    }

    fn read_image_header(&mut self) -> Result<ImageHeader, StreamError> {
        let at = self.here(Layer::Libxc, Part::ImageHeader);
        let wire: ImageHeaderWire = self.src.read_struct(at)?;
        let marker = wire.marker.get();
        if marker != IHDR_MARKER {
            return Err(StreamError::LibxcBadMarker { at, found: marker });
        }
        let id = wire.id.get();
        if id != IHDR_ID {
            return Err(StreamError::LibxcBadId { at, found: id });
        }
        let version = wire.version.get();
        if !(IHDR_VERSION_MIN..=IHDR_VERSION).contains(&version) {
            return Err(StreamError::LibxcBadVersion { at, found: version });
        }
        let options = wire.options.get();
        if options & IHDR_OPT_BIG_ENDIAN != 0 {
            return Err(StreamError::BigEndian { at });
        }
        if options & !IHDR_OPT_BIG_ENDIAN != 0 {
            return Err(StreamError::ReservedOptions {
                at,
                bits: u32::from(options & !IHDR_OPT_BIG_ENDIAN),
            });
        }
        if wire.reserved1.get() != 0 {
            return Err(StreamError::ReservedField {
                at,
                field: "reserved (offset 18)",
                value: u64::from(wire.reserved1.get()),
            });
        }
        if wire.reserved2.get() != 0 {
            return Err(StreamError::ReservedField {
                at,
                field: "reserved (offset 20)",
                value: u64::from(wire.reserved2.get()),
            });
        }
        self.xc = LibxcState {
            version,
            ..LibxcState::default()
        };
        self.phase = Phase::DomainHeader;
        Ok(ImageHeader { version })
    }

    fn read_domain_header(&mut self) -> Result<DomainHeader, StreamError> {
        let at = self.here(Layer::Libxc, Part::DomainHeader);
        let wire: DomainHeaderWire = self.src.read_struct(at)?;
        let ty = wire.domain_type.get();
        if ty != DHDR_TYPE_X86_PV {
            return Err(StreamError::UnsupportedDomainType { at, ty });
        }
        let page_shift = wire.page_shift.get();
        if page_shift != DHDR_PAGE_SHIFT {
            return Err(StreamError::BadPageShift {
                at,
                found: page_shift,
            });
        }
        if wire.reserved.get() != 0 {
            return Err(StreamError::ReservedField {
                at,
                field: "reserved",
                value: u64::from(wire.reserved.get()),
            });
        }
        self.phase = Phase::LibxcRecords;
        Ok(DomainHeader {
            domain_type: DomainType::X86Pv,
            xen_major: wire.xen_major.get(),
            xen_minor: wire.xen_minor.get(),
        })
    }

    /// Reads a record header and checks the size limit; returns where the record is.
    fn read_record_header(&mut self, layer: Layer) -> Result<(u32, u64, Where), StreamError> {
        let at = self.here(layer, Part::RecordHeader);
        let wire: RecordHeaderWire = self.src.read_struct(at)?;
        let ty = wire.ty.get();
        let length = u64::from(wire.length.get());
        let at = Where::record(layer, ty, at.offset);
        if length > u64::from(REC_LENGTH_MAX) {
            return Err(StreamError::RecordTooLong {
                at,
                length,
                max: REC_LENGTH_MAX,
            });
        }
        Ok((ty, length, at))
    }

    fn read_padding(&mut self, length: u64, at: Where) -> Result<(), StreamError> {
        let zero = self.src.skip(padding_for(length), at)?;
        if !zero && self.opts.require_zero_padding {
            return Err(StreamError::NonZeroPadding { at });
        }
        Ok(())
    }

    fn finish(&mut self, layer: Layer) -> Result<(), StreamError> {
        let at = self.here(layer, Part::AfterEnd);
        if !self.src.at_eof(at)? {
            return Err(StreamError::DataAfterEnd { at });
        }
        self.phase = Phase::Done;
        Ok(())
    }

    fn read_libxl_record(&mut self) -> Result<LibxlRecord, StreamError> {
        let (ty, length, at) = self.read_record_header(Layer::Libxl)?;
        let order = |rule| Err(StreamError::Order { at, rule });
        match ty {
            xl::END if !self.libxc_started => return order(OrderRule::NoLibxcStream),
            xl::LIBXC_CONTEXT if self.libxc_started => return order(OrderRule::Duplicate),
            xl::EMULATOR_XENSTORE_DATA | xl::EMULATOR_CONTEXT => {
                return order(OrderRule::EmulatorRecordForPv)
            }
            xl::CHECKPOINT_END if !self.in_checkpoint => {
                return order(OrderRule::UnexpectedCheckpointEnd)
            }
            xl::CHECKPOINT_STATE => return order(OrderRule::UnexpectedCheckpointState),
            _ if ty & REC_TYPE_OPTIONAL == 0 && xl::name(ty).is_none() => {
                return Err(StreamError::UnknownMandatoryRecord { at, ty })
            }
            _ => {}
        }
        let record = LibxlRecord::read_body(&mut self.src, ty, length, at)?;
        self.read_padding(length, at)?;
        match record {
            LibxlRecord::End => self.finish(Layer::Libxl)?,
            LibxlRecord::LibxcContext => {
                self.libxc_started = true;
                self.phase = Phase::ImageHeader;
            }
            LibxlRecord::CheckpointEnd => {
                self.in_checkpoint = false;
                self.phase = Phase::LibxcRecords;
            }
            _ => {}
        }
        Ok(record)
    }

    /// Record-order rules checked from the header alone, before the body is read.
    fn check_libxc_order(&mut self, ty: u32) -> Result<(), OrderRule> {
        let s = &mut self.xc;
        let v3 = s.version >= 3;
        match ty {
            xc::END if !s.vcpu0_basic => Err(OrderRule::MissingVcpu0Basic),
            xc::X86_PV_INFO if s.pv_info.is_some() => Err(OrderRule::Duplicate),
            xc::X86_PV_INFO if s.static_data_end => Err(OrderRule::AfterStaticDataEnd),
            xc::X86_CPUID_POLICY | xc::X86_MSR_POLICY | xc::STATIC_DATA_END if !v3 => {
                Err(OrderRule::NotInV2)
            }
            xc::X86_CPUID_POLICY | xc::X86_MSR_POLICY if s.static_data_end => {
                Err(OrderRule::AfterStaticDataEnd)
            }
            xc::X86_CPUID_POLICY if s.cpuid_policy => Err(OrderRule::Duplicate),
            xc::X86_MSR_POLICY if s.msr_policy => Err(OrderRule::Duplicate),
            xc::STATIC_DATA_END if s.static_data_end => Err(OrderRule::Duplicate),
            xc::X86_PV_P2M_FRAMES => {
                if !s.static_data_end {
                    if v3 {
                        return Err(OrderRule::NeedsStaticDataEnd);
                    }
                    if s.pv_info.is_none() {
                        return Err(OrderRule::NeedsPvInfo);
                    }
                    // v2 compatibility, as libxc: STATIC_DATA_END is implied here.
                    s.static_data_end = true;
                    s.static_data_end_inferred = true;
                }
                if s.pv_info.is_none() {
                    return Err(OrderRule::NeedsPvInfo);
                }
                Ok(())
            }
            xc::PAGE_DATA | xc::VERIFY => {
                if s.max_pfn.is_none() {
                    Err(OrderRule::NeedsP2mFrames)
                } else if s.in_tail {
                    Err(OrderRule::AfterVcpuState)
                } else {
                    Ok(())
                }
            }
            xc::X86_PV_VCPU_BASIC
            | xc::X86_PV_VCPU_EXTENDED
            | xc::X86_PV_VCPU_XSAVE
            | xc::X86_PV_VCPU_MSRS => {
                if !s.static_data_end {
                    Err(OrderRule::NeedsStaticDataEnd)
                } else if !s.page_data {
                    Err(OrderRule::NeedsPageData)
                } else {
                    Ok(())
                }
            }
            xc::SHARED_INFO if s.pv_info.is_none() => Err(OrderRule::NeedsPvInfo),
            xc::SHARED_INFO | xc::X86_TSC_INFO if !s.static_data_end => {
                Err(OrderRule::NeedsStaticDataEnd)
            }
            xc::HVM_CONTEXT | xc::HVM_PARAMS | xc::TOOLSTACK => Err(OrderRule::NotForPv),
            xc::CHECKPOINT_DIRTY_PFN_LIST => Err(OrderRule::BackChannelOnly),
            xc::CHECKPOINT if !self.opts.checkpointed => Err(OrderRule::CheckpointInPlainStream),
            _ => Ok(()),
        }
    }

    fn read_libxc_record(&mut self) -> Result<LibxcRecord, StreamError> {
        let (ty, length, at) = self.read_record_header(Layer::Libxc)?;
        if ty & REC_TYPE_OPTIONAL == 0 && xc::name(ty).is_none() {
            return Err(StreamError::UnknownMandatoryRecord { at, ty });
        }
        self.check_libxc_order(ty)
            .map_err(|rule| StreamError::Order { at, rule })?;
        let ctx = DecodeCtx {
            guest_width: self.xc.pv_info.map_or(8, |i| i.guest_width),
            max_pfn: self.xc.max_pfn.unwrap_or(PAGE_DATA_PFN_MASK),
        };
        let record = LibxcRecord::read_body(&mut self.src, ty, length, ctx, at)?;
        self.read_padding(length, at)?;
        let s = &mut self.xc;
        match &record {
            LibxcRecord::End => {
                if self.opts.format == StreamFormat::Libxc {
                    self.finish(Layer::Libxc)?;
                } else {
                    self.phase = Phase::LibxlRecords;
                }
            }
            LibxcRecord::X86PvInfo(info) => {
                // (Invalid pairs are refused by the body decoder.)
                if *info != X86PvInfo::X86_64 {
                    return Err(StreamError::UnsupportedPvInfo {
                        at,
                        width: info.guest_width,
                        levels: info.pt_levels,
                    });
                }
                s.pv_info = Some(*info);
            }
            LibxcRecord::X86CpuidPolicy(_) => s.cpuid_policy = true,
            LibxcRecord::X86MsrPolicy(_) => s.msr_policy = true,
            LibxcRecord::StaticDataEnd => s.static_data_end = true,
            LibxcRecord::X86PvP2mFrames(p) => {
                let end = u64::from(p.end_pfn);
                s.max_pfn = Some(s.max_pfn.map_or(end, |m| m.max(end)));
            }
            LibxcRecord::PageData(_) => s.page_data = true,
            LibxcRecord::X86PvVcpuBasic(b) => {
                s.in_tail = true;
                if b.vcpu_id == 0 && !b.context.is_empty() {
                    s.vcpu0_basic = true;
                }
            }
            LibxcRecord::X86PvVcpuExtended(_)
            | LibxcRecord::X86PvVcpuXsave(_)
            | LibxcRecord::X86PvVcpuMsrs(_)
            | LibxcRecord::SharedInfo(_)
            | LibxcRecord::X86TscInfo(_) => s.in_tail = true,
            LibxcRecord::Checkpoint => {
                s.in_tail = false;
                if self.opts.format != StreamFormat::Libxc {
                    self.in_checkpoint = true;
                    self.phase = Phase::LibxlRecords;
                }
            }
            _ => {}
        }
        Ok(record)
    }
}

impl<R: Read> Iterator for StreamReader<R> {
    type Item = Result<Located<Item>, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// Reads a whole stream into memory (for tests, `xi inspect` and small streams).
///
/// # Errors
/// The first [`StreamError`].
pub fn read_all<R: Read>(inner: R, opts: ReaderOptions) -> Result<Vec<Located<Item>>, StreamError> {
    StreamReader::with_options(inner, opts).collect()
}
