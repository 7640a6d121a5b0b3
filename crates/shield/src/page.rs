//! The challenge interstitial: a small HTML page whose inline script finds
//! the proof-of-work nonce with Web Crypto (`crypto.subtle.digest`), posts it
//! to [`crate::CHALLENGE_PATH`] and reloads the page once the cookie is set.
//! Without JavaScript, `<noscript>` explains what is needed.

/// The page for `token` (hex digits and dots only, so it needs no escaping)
/// at `difficulty` leading zero bits.
pub fn challenge_page(token: &str, difficulty: u8) -> String {
    // The token is produced by `Pow::issue` ([0-9a-f.]); filter anyway so
    // nothing can ever break out of the script string.
    let token: String = token
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '.')
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Checking your browser</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}</style>
</head><body>
<h1>Checking your browser</h1>
<p id="status">Your browser is solving a small puzzle to prove it is not an automated client. This takes a moment and happens once per session.</p>
<noscript><p><strong>JavaScript is required.</strong> This site asks browsers to solve a short proof-of-work puzzle before it lets them in, to keep automated abuse out. Please enable JavaScript for this site and reload the page. If you use an API client, ask the site's operator for an exempt path.</p></noscript>
<script>
(async function () {{
  var token = "{token}", bits = {difficulty}, enc = new TextEncoder();
  var status = document.getElementById("status");
  function zeros(h) {{
    var n = 0;
    for (var i = 0; i < h.length; i++) {{
      if (h[i] === 0) {{ n += 8; continue; }}
      return n + Math.clz32(h[i]) - 24;
    }}
    return n;
  }}
  if (!window.crypto || !crypto.subtle) {{
    status.textContent = "Your browser cannot solve the puzzle here (Web Crypto needs https).";
    return;
  }}
  for (var n = 0; ; n++) {{
    var h = new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(token + n)));
    if (zeros(h) >= bits) {{
      var r = await fetch("{path}", {{
        method: "POST",
        credentials: "same-origin",
        headers: {{ "Content-Type": "application/x-www-form-urlencoded" }},
        body: "token=" + encodeURIComponent(token) + "&nonce=" + n
      }});
      if (r.ok) {{ status.textContent = "Done, loading the page."; location.reload(); }}
      else {{ status.textContent = "The answer was refused (" + r.status + "). Reload the page to try again."; }}
      return;
    }}
  }}
}})();
</script>
</body></html>
"#,
        path = crate::CHALLENGE_PATH
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_embeds_token_and_difficulty_and_explains_without_js() {
        let p = super::challenge_page("ab12.99.16.ff\"</x>", 16);
        assert!(p.contains(r#"var token = "ab12.99.16.ff", bits = 16"#));
        assert!(!p.contains("</x>"));
        assert!(p.contains("<noscript>"));
        assert!(p.contains("crypto.subtle.digest"));
    }
}
