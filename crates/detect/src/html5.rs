//! HTML5 tokenizer used by the XSS detector (libinjection_html5).
