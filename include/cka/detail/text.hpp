#pragma once
// Private: numbers and names as text for the files cka writes (the tool's CSV and JSON, the SVG heatmap):
// numbers without a negative zero, well-formed XML text, names shortened in the middle. Free of Eigen.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace cka::detail {

/// A value as text: "nan" for NaN, `digits` significant digits, and never "-0": a value that rounds to
/// zero at that precision prints with its exponent (-3e-17), an exact zero as 0.
inline std::string number(double v, int digits = 12) {
  if (std::isnan(v)) return "nan";
  if (v == 0.0) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

/// A fixed-point label (heatmap cells, legend ticks) that does not print a negative zero: a small
/// negative value keeps its sign with the digits that show it (-0.003 → "-3e-03" rather than "-0.00").
inline std::string short_number(double v, int decimals = 2) {
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  const std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos) {
    if (v == 0.0 || s[0] != '-') return std::string(s[0] == '-' ? s.substr(1) : s);
    std::snprintf(buf, sizeof buf, "%.0e", v);
  }
  return buf;
}

/// Text for XML character data and attributes: well-formed UTF-8 (each invalid byte, and each character
/// XML 1.0 forbids — controls other than tab, LF, CR — becomes U+FFFD) with & < > " ' escaped.
inline std::string xml_text(const std::string& s) {
  std::string out;
  const std::string replacement = "\xEF\xBF\xBD";
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = len > 0 && i + len <= s.size();
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (std::size_t k = 1; valid && k < len; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      valid = (d >> 6) == 0x2;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    // Overlong forms, surrogates, values beyond U+10FFFF and the XML-forbidden characters.
    if (valid) {
      const std::uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
      valid = cp >= least[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && cp != 0xFFFE && cp != 0xFFFF &&
              !(cp < 0x20 && cp != 0x9 && cp != 0xA && cp != 0xD) && cp != 0x7F;
    }
    if (!valid) {
      out += replacement;
      i += 1;
      continue;
    }
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.append(s, i, len);
    }
    i += len;
  }
  return out;
}

/// Number of characters (code points) of UTF-8 text, for sizing labels.
inline std::size_t text_length(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

/// A long name shortened in the middle to at most `limit` characters ("sentence_tr…layer_11").
inline std::string ellipsize(const std::string& s, std::size_t limit) {
  if (text_length(s) <= limit) return s;
  // Cut at character boundaries: keep the head and the tail, which usually hold the distinguishing parts.
  const std::size_t head = (limit - 1) / 2, tail = limit - 1 - head;
  std::size_t i = 0, kept = 0;
  while (i < s.size() && kept < head) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    ++kept;
  }
  std::size_t j = s.size(), back = 0;
  while (j > i && back < tail) {
    --j;
    while (j > i && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
    ++back;
  }
  return s.substr(0, i) + "\xE2\x80\xA6" + s.substr(j);
}

}  // namespace cka::detail
