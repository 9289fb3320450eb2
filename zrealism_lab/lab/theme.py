"""The lab's colours and layout rules, as one stylesheet over JupyterLab's CSS variables: every colour the lab
uses is a ``--zr-*`` variable defined from the ``--jp-*`` ones, with the lighter shades under a dark theme, so text
reads in light and dark themes alike (JupyterLab marks the theme on <body> as data-jp-theme-light)."""
from __future__ import annotations

INK = "var(--zr-ink)"
MUTED = "var(--zr-muted)"
OK = "var(--zr-ok)"
WARN = "var(--zr-warn)"
ERROR = "var(--zr-error)"
NOTE = "var(--zr-note)"
PANEL = "var(--zr-panel)"

LEVEL_COLOURS = {"info": INK, "ok": OK, "warn": WARN, "error": ERROR, "note": NOTE}
# better / worse in comparisons
BETTER, WORSE = OK, ERROR

STYLESHEET = """
<style>
.zr-lab {
  --zr-ink: var(--jp-ui-font-color1, rgba(0,0,0,.87));
  --zr-muted: color-mix(in srgb, var(--jp-ui-font-color1, #000) 78%, transparent);
  --zr-ok: color-mix(in srgb, var(--jp-success-color0, #1b5e20) 85%, var(--jp-ui-font-color0, #000));
  --zr-warn: color-mix(in srgb, var(--jp-warn-color0, #e65100) 75%, var(--jp-ui-font-color0, #000));
  --zr-error: var(--jp-error-color0, #b71c1c);
  --zr-note: color-mix(in srgb, var(--jp-brand-color0, #0d47a1) 85%, var(--jp-ui-font-color0, #000));
  --zr-panel: var(--jp-layout-color2, #eee);
  --zr-border: var(--jp-border-color1, #bdbdbd);
  color: var(--zr-ink);
}
body[data-jp-theme-light="false"] .zr-lab {
  --zr-ok: var(--jp-success-color2, #81c784);
  --zr-warn: var(--jp-warn-color2, #ffb74d);
  --zr-error: var(--jp-error-color2, #e57373);
  --zr-note: var(--jp-brand-color2, #64b5f6);
}
.zr-lab .zr-msg { white-space: pre-wrap; }
.zr-lab .zr-msg-info { color: var(--zr-ink); }
.zr-lab .zr-msg-ok { color: var(--zr-ok); }
.zr-lab .zr-msg-warn { color: var(--zr-warn); }
.zr-lab .zr-msg-error { color: var(--zr-error); }
.zr-lab .zr-msg-note, .zr-lab .zr-tiny-note { color: var(--zr-note); }
.zr-lab .zr-caption { font-size: 12px; color: var(--zr-muted); text-align: center; max-width: 192px;
  overflow-wrap: anywhere; }
.zr-lab .zr-field-note { font-size: 12px; color: var(--zr-muted); margin-left: 6px; }
.zr-lab .zr-thumb img, .zr-lab img.zr-thumb-img { background: var(--zr-panel); object-fit: contain; }
.zr-lab .zr-zoom summary { list-style: none; cursor: zoom-in; }
.zr-lab .zr-zoom summary::-webkit-details-marker { display: none; }
.zr-lab .zr-zoom[open] summary { cursor: zoom-out; }
.zr-lab .zr-zoom-full { image-rendering: pixelated; max-width: none; margin-top: 6px;
  border: 1px solid var(--zr-border); }
.zr-lab .zr-button-link { display: inline-block; padding: 3px 10px; margin: 2px 6px 2px 0;
  border: 1px solid var(--zr-border); border-radius: 3px; color: var(--zr-ink); background: var(--zr-panel);
  text-decoration: none; font-size: 13px; }
.zr-lab .zr-button-link:hover { border-color: var(--jp-brand-color1, #1976d2); }
.zr-lab .zr-better { color: var(--zr-ok); font-weight: 600; }
.zr-lab .zr-worse { color: var(--zr-error); font-weight: 600; }
.zr-lab table.zr-table { border-collapse: collapse; font-size: 12px; }
.zr-lab table.zr-table td, .zr-lab table.zr-table th { padding: 2px 10px 2px 0; text-align: left;
  vertical-align: top; border-bottom: 1px solid var(--zr-border); }
.zr-lab .zr-wrap-text { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 40em; }
.zr-lab .zr-headline { display: inline-block; margin: 0 18px 6px 0; }
.zr-lab .zr-headline b { font-size: 20px; display: block; }
.zr-lab .zr-plot img, .zr-lab img.zr-plot-img { background: white; border-radius: 4px; height: auto; }
.zr-lab .zr-drop { border: 2px dashed var(--zr-border); border-radius: 6px; padding: 8px 12px;
  color: var(--zr-muted); min-width: 180px; text-align: center; outline: none; }
.zr-lab .zr-drop:focus, .zr-lab .zr-drop.zr-drop-over { border-color: var(--jp-brand-color1, #1976d2); }
.zr-lab .zr-indeterminate { width: 260px; height: 8px; border-radius: 4px; overflow: hidden;
  background: var(--zr-panel); position: relative; }
.zr-lab .zr-indeterminate::after { content: ""; position: absolute; left: -40%; width: 40%; height: 100%;
  background: var(--jp-brand-color1, #1976d2); animation: zr-slide 1.2s ease-in-out infinite; }
@keyframes zr-slide { from { left: -40%; } to { left: 100%; } }
.zr-lab .zr-unit-off .widget-slider, .zr-lab .zr-unit-off .widget-dropdown { opacity: .45; }
.zr-lab .zr-blocked { color: var(--zr-error); }
.zr-lab .widget-button.zr-cancel-button:disabled { opacity: .35; }
</style>
"""

__all__ = ["BETTER", "ERROR", "INK", "LEVEL_COLOURS", "MUTED", "NOTE", "OK", "PANEL", "STYLESHEET", "WARN", "WORSE"]
