//! XSS heuristics over the HTML5 token stream (libinjection_xss).
//!
//! The input is tokenized five times, once per [`StartState`] (as element
//! content, and as the inside of an unquoted, single-, double- and
//! back-quoted attribute value), and flagged when any pass meets:
//!
//! * a `<!DOCTYPE`;
//! * an opening tag whose name is on the tag blacklist (`script`, `iframe`,
//!   `object`, `style`, ...) or starts with `svg` / `xsl`;
//! * an event-handler attribute (`on` + a known DOM event name, matched as a
//!   prefix), an `xmlns*` / `xlink*` attribute, or one of the always-bad
//!   attributes (`style`, `filter`, `datasrc`, `dataformatas`) with a value;
//! * a URL-taking attribute (`href`, `src`, `action`, `formaction`, ...) whose
//!   value, after skipping control/space/non-ASCII bytes and decoding
//!   numeric character references, starts with `data`, `view-source`, `java`
//!   or `vbscript` (NUL and LF ignored, case-insensitive);
//! * SVG `attributename` whose value names a dangerous attribute;
//! * a comment that contains a back-quote, is an IE conditional comment
//!   (`[if`), or starts with `xml`, `import` or `entity`.
//!
//! Matching follows libinjection byte for byte, including its quirks (NUL
//! bytes ignored inside tag and attribute names, numeric references above
//! 0xFF compared by their low byte), so verdicts equal ModSecurity's
//! `@detectXSS`. Nothing allocates; each pass is linear in the input.
//!
//! The event-name and blacklist tables are data from libinjection
//! (Copyright (c) 2012-2016 Nick Galbreath, BSD-3-Clause); the code is ours.

use crate::html5::{StartState, TokenType, Tokenizer};

/// True when `input` looks like cross-site scripting in any HTML context:
/// as element content or pasted inside any kind of attribute value.
/// Equivalent to libinjection's `libinjection_xss`.
pub fn detect_xss(input: &[u8]) -> bool {
    StartState::ALL.iter().any(|&start| is_xss(input, start))
}

/// True when `input`, pasted into an HTML document at `start`, looks like
/// cross-site scripting. Equivalent to libinjection's `libinjection_is_xss`.
pub fn is_xss(input: &[u8], start: StartState) -> bool {
    let mut attr = AttrKind::None;
    for token in Tokenizer::new(input, start) {
        let bytes = token.bytes;
        match token.kind {
            TokenType::Doctype => return true,
            TokenType::TagNameOpen => {
                if is_black_tag(bytes) {
                    return true;
                }
            }
            TokenType::AttrName => {
                attr = classify_attr(bytes);
                continue;
            }
            TokenType::AttrValue => {
                let bad = match attr {
                    AttrKind::None => false,
                    AttrKind::Black | AttrKind::Style => true,
                    AttrKind::Url => is_black_url(bytes),
                    AttrKind::Indirect => classify_attr(bytes) != AttrKind::None,
                };
                if bad {
                    return true;
                }
            }
            TokenType::TagComment => {
                if is_black_comment(bytes) {
                    return true;
                }
            }
            TokenType::DataText
            | TokenType::TagNameClose
            | TokenType::TagNameSelfClose
            | TokenType::TagClose => {}
        }
        // Only the value directly after a name is judged by that name.
        attr = AttrKind::None;
    }
    false
}

/// How an attribute name makes its value dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttrKind {
    /// Harmless attribute.
    None,
    /// Any value is an attack (event handlers, xmlns, IE data binding).
    Black,
    /// The value is a URL: bad when it uses a scripting/data scheme.
    Url,
    /// Inline CSS: any value is treated as an attack.
    Style,
    /// SVG animation: the value *names* another attribute.
    Indirect,
}

/// Opening tags that are an attack by themselves.
const BLACK_TAGS: &[&[u8]] = &[
    b"APPLET",
    b"BASE",
    b"COMMENT",
    b"EMBED",
    b"FRAME",
    b"FRAMESET",
    b"HANDLER",
    b"IFRAME",
    b"IMPORT",
    b"ISINDEX",
    b"LINK",
    b"LISTENER",
    b"META",
    b"NOSCRIPT",
    b"OBJECT",
    b"SCRIPT",
    b"STYLE",
    b"VMLFRAME",
    b"XML",
    b"XSS",
];

/// Attributes judged by name (exact match, NULs ignored).
const BLACK_ATTRS: &[(&[u8], AttrKind)] = &[
    (b"ACTION", AttrKind::Url),
    (b"ATTRIBUTENAME", AttrKind::Indirect),
    (b"BY", AttrKind::Url),
    (b"BACKGROUND", AttrKind::Url),
    (b"DATAFORMATAS", AttrKind::Black),
    (b"DATASRC", AttrKind::Black),
    (b"DYNSRC", AttrKind::Url),
    (b"FILTER", AttrKind::Style),
    (b"FORMACTION", AttrKind::Url),
    (b"FOLDER", AttrKind::Url),
    (b"FROM", AttrKind::Url),
    (b"HANDLER", AttrKind::Url),
    (b"HREF", AttrKind::Url),
    (b"LOWSRC", AttrKind::Url),
    (b"POSTER", AttrKind::Url),
    (b"SRC", AttrKind::Url),
    (b"STYLE", AttrKind::Style),
    (b"TO", AttrKind::Url),
    (b"VALUES", AttrKind::Url),
    (b"XLINK:HREF", AttrKind::Url),
];

/// Longest name in [`BLACK_TAGS`] and [`BLACK_ATTRS`]: names are folded into
/// a stack buffer of this size, anything longer cannot match.
const MAX_LISTED_NAME: usize = 13;

/// URL schemes (prefixes) that run script or smuggle content. `JAVA` covers
/// `javascript:` and its obfuscations.
const BLACK_URL_PREFIXES: &[&[u8]] = &[b"DATA", b"VIEW-SOURCE", b"JAVA", b"VBSCRIPT"];

/// DOM event names; `on` + any of these (as a prefix of the rest of the
/// attribute name) is an event handler. Sorted; mostly WebKit's EventNames.h.
const EVENTS: &[&[u8]] = &[
    b"ABORT",
    b"ACTIVATE",
    b"ACTIVE",
    b"ADDSOURCEBUFFER",
    b"ADDSTREAM",
    b"ADDTRACK",
    b"AFTERPRINT",
    b"ANIMATIONCANCEL",
    b"ANIMATIONEND",
    b"ANIMATIONITERATION",
    b"ANIMATIONSTART",
    b"AUDIOEND",
    b"AUDIOPROCESS",
    b"AUDIOSTART",
    b"AUTOCOMPLETE",
    b"AUTOCOMPLETEERROR",
    b"BEFOREACTIVATE",
    b"BEFORECOPY",
    b"BEFORECUT",
    b"BEFOREINPUT",
    b"BEFORELOAD",
    b"BEFOREPASTE",
    b"BEFOREPRINT",
    b"BEFOREUNLOAD",
    b"BEGINEVENT",
    b"BLOCKED",
    b"BLUR",
    b"BOUNDARY",
    b"BUFFEREDAMOUNTLOW",
    b"CACHED",
    b"CANCEL",
    b"CANPLAY",
    b"CANPLAYTHROUGH",
    b"CHANGE",
    b"CHARGINGCHANGE",
    b"CHARGINGTIMECHANGE",
    b"CHECKING",
    b"CLICK",
    b"CLOSE",
    b"COMPLETE",
    b"COMPOSITIONEND",
    b"COMPOSITIONSTART",
    b"COMPOSITIONUPDATE",
    b"CONNECT",
    b"CONNECTING",
    b"CONNECTIONSTATECHANGE",
    b"CONTEXTMENU",
    b"CONTROLLERCHANGE",
    b"COPY",
    b"CUECHANGE",
    b"CUT",
    b"DATAAVAILABLE",
    b"DATACHANNEL",
    b"DBLCLICK",
    b"DEVICECHANGE",
    b"DEVICEMOTION",
    b"DEVICEORIENTATION",
    b"DISCHARGINGTIMECHANGE",
    b"DISCONNECT",
    b"DOMACTIVATE",
    b"DOMCHARACTERDATAMODIFIED",
    b"DOMCONTENTLOADED",
    b"DOMFOCUSIN",
    b"DOMFOCUSOUT",
    b"DOMNODEINSERTED",
    b"DOMNODEINSERTEDINTODOCUMENT",
    b"DOMNODEREMOVED",
    b"DOMNODEREMOVEDFROMDOCUMENT",
    b"DOMSUBTREEMODIFIED",
    b"DOWNLOADING",
    b"DRAG",
    b"DRAGEND",
    b"DRAGENTER",
    b"DRAGLEAVE",
    b"DRAGOVER",
    b"DRAGSTART",
    b"DROP",
    b"DURATIONCHANGE",
    b"EMPTIED",
    b"ENCRYPTED",
    b"END",
    b"ENDED",
    b"ENDEVENT",
    b"ENTER",
    b"ENTERPICTUREINPICTURE",
    b"ERROR",
    b"EXIT",
    b"FETCH",
    b"FINISH",
    b"FOCUS",
    b"FOCUSIN",
    b"FOCUSOUT",
    b"FORMCHANGE",
    b"FORMINPUT",
    b"GAMEPADCONNECTED",
    b"GAMEPADDISCONNECTED",
    b"GESTURECHANGE",
    b"GESTUREEND",
    b"GESTURESCROLLEND",
    b"GESTURESCROLLSTART",
    b"GESTURESCROLLUPDATE",
    b"GESTURESTART",
    b"GESTURETAP",
    b"GESTURETAPDOWN",
    b"GOTPOINTERCAPTURE",
    b"HASHCHANGE",
    b"ICECANDIDATE",
    b"ICECANDIDATEERROR",
    b"ICECONNECTIONSTATECHANGE",
    b"ICEGATHERINGSTATECHANGE",
    b"INACTIVE",
    b"INPUT",
    b"INPUTSOURCESCHANGE",
    b"INSTALL",
    b"INVALID",
    b"KEYDOWN",
    b"KEYPRESS",
    b"KEYSTATUSESCHANGE",
    b"KEYUP",
    b"LANGUAGECHANGE",
    b"LEAVEPICTUREINPICTURE",
    b"LEVELCHANGE",
    b"LOAD",
    b"LOADEDDATA",
    b"LOADEDMETADATA",
    b"LOADEND",
    b"LOADING",
    b"LOADINGDONE",
    b"LOADINGERROR",
    b"LOADSTART",
    b"LOSTPOINTERCAPTURE",
    b"MARK",
    b"MERCHANTVALIDATION",
    b"MESSAGE",
    b"MESSAGEERROR",
    b"MOUSEDOWN",
    b"MOUSEENTER",
    b"MOUSELEAVE",
    b"MOUSEMOVE",
    b"MOUSEOUT",
    b"MOUSEOVER",
    b"MOUSEUP",
    b"MOUSEWHEEL",
    b"MUTE",
    b"NEGOTIATIONNEEDED",
    b"NEXTTRACK",
    b"NOMATCH",
    b"NOUPDATE",
    b"OBSOLETE",
    b"OFFLINE",
    b"ONLINE",
    b"OPEN",
    b"ORIENTATIONCHANGE",
    b"OVERCONSTRAINED",
    b"OVERFLOWCHANGED",
    b"PAGEHIDE",
    b"PAGESHOW",
    b"PASTE",
    b"PAUSE",
    b"PAYERDETAILCHANGE",
    b"PAYMENTAUTHORIZED",
    b"PAYMENTMETHODCHANGE",
    b"PAYMENTMETHODSELECTED",
    b"PLAY",
    b"PLAYING",
    b"POINTERCANCEL",
    b"POINTERDOWN",
    b"POINTERENTER",
    b"POINTERLEAVE",
    b"POINTERLOCKCHANGE",
    b"POINTERLOCKERROR",
    b"POINTERMOVE",
    b"POINTEROUT",
    b"POINTEROVER",
    b"POINTERUP",
    b"POPSTATE",
    b"PREVIOUSTRACK",
    b"PROCESSORERROR",
    b"PROGRESS",
    b"PROPERTYCHANGE",
    b"RATECHANGE",
    b"READYSTATECHANGE",
    b"REJECTIONHANDLED",
    b"REMOVE",
    b"REMOVESOURCEBUFFER",
    b"REMOVESTREAM",
    b"REMOVETRACK",
    b"RESET",
    b"RESIZE",
    b"RESOURCETIMINGBUFFERFULL",
    b"RESULT",
    b"RESUME",
    b"SCROLL",
    b"SEARCH",
    b"SECURITYPOLICYVIOLATION",
    b"SEEKED",
    b"SEEKING",
    b"SELECT",
    b"SELECTEND",
    b"SELECTIONCHANGE",
    b"SELECTSTART",
    b"SHIPPINGADDRESSCHANGE",
    b"SHIPPINGCONTACTSELECTED",
    b"SHIPPINGMETHODSELECTED",
    b"SHIPPINGOPTIONCHANGE",
    b"SHOW",
    b"SIGNALINGSTATECHANGE",
    b"SLOTCHANGE",
    b"SOUNDEND",
    b"SOUNDSTART",
    b"SOURCECLOSE",
    b"SOURCEENDED",
    b"SOURCEOPEN",
    b"SPEECHEND",
    b"SPEECHSTART",
    b"SQUEEZE",
    b"SQUEEZEEND",
    b"SQUEEZESTART",
    b"STALLED",
    b"START",
    b"STARTED",
    b"STATECHANGE",
    b"STOP",
    b"STORAGE",
    b"SUBMIT",
    b"SUCCESS",
    b"SUSPEND",
    b"TEXTINPUT",
    b"TIMEOUT",
    b"TIMEUPDATE",
    b"TOGGLE",
    b"TONECHANGE",
    b"TOUCHCANCEL",
    b"TOUCHEND",
    b"TOUCHFORCECHANGE",
    b"TOUCHMOVE",
    b"TOUCHSTART",
    b"TRACK",
    b"TRANSITIONCANCEL",
    b"TRANSITIONEND",
    b"TRANSITIONRUN",
    b"TRANSITIONSTART",
    b"UNCAPTUREDERROR",
    b"UNHANDLEDREJECTION",
    b"UNLOAD",
    b"UNMUTE",
    b"UPDATE",
    b"UPDATEEND",
    b"UPDATEFOUND",
    b"UPDATEREADY",
    b"UPDATESTART",
    b"UPGRADENEEDED",
    b"VALIDATEMERCHANT",
    b"VERSIONCHANGE",
    b"VISIBILITYCHANGE",
    b"VOLUMECHANGE",
    b"WAITING",
    b"WAITINGFORKEY",
    b"WEBGLCONTEXTCHANGED",
    b"WEBGLCONTEXTCREATIONERROR",
    b"WEBGLCONTEXTLOST",
    b"WEBGLCONTEXTRESTORED",
    b"WEBKITANIMATIONEND",
    b"WEBKITANIMATIONITERATION",
    b"WEBKITANIMATIONSTART",
    b"WEBKITBEFORETEXTINSERTED",
    b"WEBKITBEGINFULLSCREEN",
    b"WEBKITCURRENTPLAYBACKTARGETISWIRELESSCHANGED",
    b"WEBKITENDFULLSCREEN",
    b"WEBKITFULLSCREENCHANGE",
    b"WEBKITFULLSCREENERROR",
    b"WEBKITKEYADDED",
    b"WEBKITKEYERROR",
    b"WEBKITKEYMESSAGE",
    b"WEBKITMOUSEFORCECHANGED",
    b"WEBKITMOUSEFORCEDOWN",
    b"WEBKITMOUSEFORCEUP",
    b"WEBKITMOUSEFORCEWILLBEGIN",
    b"WEBKITNEEDKEY",
    b"WEBKITNETWORKINFOCHANGE",
    b"WEBKITPLAYBACKTARGETAVAILABILITYCHANGED",
    b"WEBKITPRESENTATIONMODECHANGED",
    b"WEBKITREGIONOVERSETCHANGE",
    b"WEBKITREMOVESOURCEBUFFER",
    b"WEBKITSOURCECLOSE",
    b"WEBKITSOURCEENDED",
    b"WEBKITSOURCEOPEN",
    b"WEBKITSPEECHCHANGE",
    b"WEBKITTRANSITIONEND",
    b"WEBKITWILLREVEALBOTTOM",
    b"WEBKITWILLREVEALLEFT",
    b"WEBKITWILLREVEALRIGHT",
    b"WEBKITWILLREVEALTOP",
    b"WHEEL",
    b"WRITE",
    b"WRITEEND",
    b"WRITESTART",
    b"ZOOM",
];

/// `name` with NUL bytes removed and ASCII letters upper-cased, when that
/// fits in [`MAX_LISTED_NAME`] bytes. The original compares names this way
/// (old browsers ignored NULs); folding once keeps the cost linear however
/// many NULs an attacker pads a name with.
fn fold_name(name: &[u8]) -> Option<([u8; MAX_LISTED_NAME], usize)> {
    let mut buf = [0u8; MAX_LISTED_NAME];
    let mut len = 0;
    for &b in name.iter().filter(|&&b| b != 0) {
        *buf.get_mut(len)? = b.to_ascii_uppercase();
        len += 1;
    }
    Some((buf, len))
}

/// `s` starts with `prefix` (upper case), ASCII case-insensitively and with
/// no NUL skipping: a NUL inside the window never matches.
fn starts_with_upper(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len()
        && s.iter()
            .zip(prefix)
            .all(|(&a, &b)| a.to_ascii_uppercase() == b)
}

fn is_black_tag(name: &[u8]) -> bool {
    if name.len() < 3 {
        return false;
    }
    if let Some((buf, len)) = fold_name(name) {
        if BLACK_TAGS.contains(&&buf[..len]) {
            return true;
        }
    }
    // Anything SVG or XSL(T): raw first three bytes, NULs not skipped.
    starts_with_upper(name, b"SVG") || starts_with_upper(name, b"XSL")
}

fn classify_attr(name: &[u8]) -> AttrKind {
    if name.len() < 2 {
        return AttrKind::None;
    }
    if name.len() >= 5 {
        if starts_with_upper(name, b"ON") {
            let event = &name[2..];
            if EVENTS.iter().any(|e| starts_with_upper(event, e)) {
                return AttrKind::Black;
            }
        }
        // xmlns can declare arbitrary tags; xlink:* carries URLs.
        if starts_with_upper(name, b"XMLNS") || starts_with_upper(name, b"XLINK") {
            return AttrKind::Black;
        }
    }
    let Some((buf, len)) = fold_name(name) else {
        return AttrKind::None;
    };
    BLACK_ATTRS
        .iter()
        .find(|(n, _)| *n == &buf[..len])
        .map_or(AttrKind::None, |&(_, kind)| kind)
}

fn is_black_comment(c: &[u8]) -> bool {
    // IE treats "`" as a tag end.
    if c.contains(&b'`') {
        return true;
    }
    // IE conditional comment (`<!--[if ...`), and XML processing bits.
    if c.len() > 3
        && ((c[0] == b'[' && starts_with_upper(&c[1..], b"IF")) || starts_with_upper(c, b"XML"))
    {
        return true;
    }
    // IE `<?import` pseudo-tag, XML entity definitions.
    c.len() > 5 && (starts_with_upper(c, b"IMPORT") || starts_with_upper(c, b"ENTITY"))
}

fn is_black_url(value: &[u8]) -> bool {
    // Browsers skip leading spaces and control bytes; some skip non-ASCII
    // (Opera's UTF-8 spaces, ignored EUC-JP bytes), so all of them go.
    let start = value
        .iter()
        .position(|&b| b > 0x20 && b < 0x7F)
        .unwrap_or(value.len());
    let value = &value[start..];
    BLACK_URL_PREFIXES
        .iter()
        .any(|prefix| decoded_starts_with(value, prefix))
}

/// Limit on a decoded numeric character reference, as in libinjection:
/// larger values make the reference read as a literal `&`, which also
/// bounds the arithmetic against overflow from `&#99999999...`.
const MAX_CHAR_REF: u32 = 0x0010_00FF;

/// Decodes one character at the start of `src` (non-empty): a numeric
/// character reference (`&#106;`, `&#x6A`, `;` optional) or one raw byte.
/// Named references are not decoded (`&` is returned). Returns the value and
/// the number of bytes consumed (always >= 1, never more than `src.len()`).
fn decode_char(src: &[u8]) -> (u32, usize) {
    let Some(&first) = src.first() else {
        return (0, 1);
    };
    if first != b'&' || src.len() < 2 {
        return (u32::from(first), 1);
    }
    const AMP: (u32, usize) = (b'&' as u32, 1);
    if src[1] != b'#' {
        return AMP;
    }
    // Bytes past the token read as NUL: in the original they are the
    // token's terminator (a quote, space, `>` or the string's NUL), never a
    // digit.
    let at = |i: usize| src.get(i).copied().unwrap_or(0);
    let (radix, digits_from) = if matches!(at(2), b'x' | b'X') {
        (16, 3)
    } else {
        (10, 2)
    };
    let Some(mut value) = char::from(at(digits_from)).to_digit(radix) else {
        return AMP;
    };
    let mut i = digits_from + 1;
    while let Some(&ch) = src.get(i) {
        if ch == b';' {
            return (value, i + 1);
        }
        let Some(digit) = char::from(ch).to_digit(radix) else {
            return (value, i);
        };
        value = value * radix + digit;
        if value > MAX_CHAR_REF {
            return AMP;
        }
        i += 1;
    }
    (value, i.min(src.len()))
}

/// Does the HTML-encoded `value` start with `prefix` (upper-case ASCII)?
/// Leading characters <= 0x20 (after decoding) are skipped, NUL and LF are
/// ignored anywhere, letters compare case-insensitively and a decoded
/// value is compared by its low byte, all as libinjection does.
fn decoded_starts_with(mut value: &[u8], prefix: &[u8]) -> bool {
    let mut matched = 0;
    let mut leading = true;
    while !value.is_empty() {
        if matched == prefix.len() {
            return true;
        }
        let (mut ch, consumed) = decode_char(value);
        value = value.get(consumed..).unwrap_or_default();
        if leading && ch <= 0x20 {
            continue;
        }
        leading = false;
        if ch == 0 || ch == u32::from(b'\n') {
            continue;
        }
        if (u32::from(b'a')..=u32::from(b'z')).contains(&ch) {
            ch -= 0x20;
        }
        // Truncation to the low byte is the original's `(char)` cast.
        if prefix[matched] != (ch & 0xFF) as u8 {
            return false;
        }
        matched += 1;
    }
    matched == prefix.len()
}
