"""The file formats both kinds of report write (expand's family tables, report's run reports): which format an
output file's suffix means, and text made safe for LaTeX and Markdown."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

#: Output file suffix -> format, for `expand --out` and `report --out` (each accepts the formats it writes).
FORMAT_BY_SUFFIX = {".md": "md", ".markdown": "md", ".tex": "latex", ".csv": "csv", ".json": "json",
                    ".html": "html", ".htm": "html"}


def output_format(fmt: str | None, out: Path | None, *, formats: tuple[str, ...], default: str,
                  file_default: str | None = None) -> str:
    """The format to write: `fmt` as asked; where none was asked, `default` on the console, and for a file `out`
    the format its suffix names (else `file_default`). UserError (one line), before any work, for a format this
    command does not write, a suffix it cannot tell, or an `out` that cannot be written."""
    if fmt is not None and fmt not in formats:
        raise UserError(f"unknown --format {fmt!r}; choose one of {', '.join(formats)}")
    if fmt is None and out is None:
        fmt = default
    elif fmt is None:
        fmt = FORMAT_BY_SUFFIX.get(out.suffix.lower())
        if fmt not in formats:
            if file_default is None:
                written = "|".join(f for f in formats if f != default)
                raise UserError(f"cannot tell the format of {out} from its suffix: add --format {written}")
            fmt = file_default
    if out is not None:
        from .fileio import probe_writable_file

        try:
            probe_writable_file(out)
        except OSError as exc:
            raise UserError(f"--out: {exc}") from None
    return fmt


# ------------------------------------------------------------------ LaTeX

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  # In pdflatex's default (OT1) font these three print as other glyphs (¡, ¿, —).
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
                  "\n": " ", "\r": " ", "\t": " "}


_LATEX_UNICODE = {"α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "φ": r"$\phi$", "²": r"$^2$",
                  "·": r"$\cdot$", "≈": r"$\approx$", "±": r"$\pm$", "×": r"$\times$", "σ": r"$\sigma$",
                  "√": r"$\surd$", "≤": r"$\leq$", "≥": r"$\geq$", "→": r"$\rightarrow$", "−": "-",
                  "–": "--", "—": "---", "…": r"\ldots{}", "°": r"$^\circ$", "µ": r"$\mu$", "μ": r"$\mu$",
                  "ß": r"\ss{}", "ø": r"\o{}", "Ø": r"\O{}", "æ": r"\ae{}", "Æ": r"\AE{}", "œ": r"\oe{}",
                  "Œ": r"\OE{}", "ł": r"\l{}", "Ł": r"\L{}", "\u00a0": "~", "†": r"\dag{}"}


def _latex_char(c: str) -> str:
    if c in _LATEX_ESCAPES:
        return _LATEX_ESCAPES[c]
    if c in _LATEX_UNICODE:
        return _LATEX_UNICODE[c]
    if c.isascii():
        return c if c.isprintable() else " "
    import unicodedata

    # Accented Latin letters (é, ü, ñ) print through pdflatex's UTF-8 input; anything else a plain
    # pdflatex cannot typeset (a CJK file name, an emoji) is spelled as its code point, not an error.
    base = unicodedata.normalize("NFD", c)[0]
    if base.isascii() and base.isalpha():
        return c
    return f"[U+{ord(c):04X}]"


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and spell out the Greek and math signs our text uses (pdflatex-safe).

    Anything user-provided (paths, data set names, reasons, command lines) goes through here, so the
    result compiles with nothing but pdflatex's defaults, whatever the string holds.
    """
    return "".join(_latex_char(c) for c in str(text))


# ------------------------------------------------------------------ Markdown

_MD_SPECIALS = set("\\`*_[]<>|#&!")


def md_escape(text: str) -> str:
    """Backslash-escape Markdown's punctuation (CommonMark allows it before any ASCII punctuation)."""
    return "".join("\\" + c if c in _MD_SPECIALS else (" " if c in "\r\n\t" else c) for c in str(text))
