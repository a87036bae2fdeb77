"""The style sheet of the HTML explainer and of its live mode (inlined: the page needs no network)."""

CSS = r"""
:root { --ink: #1b1f24; --muted: #5b6570; --line: #d7dce1; --accent: #0b62c4; --bg: #f6f7f9;
        --win: #1971c2; --rf: #e8590c; --pix: #2f9e44; }
* { box-sizing: border-box; }
body {
  margin: 0; color: var(--ink); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
header { padding: 12px 22px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 20px; }
header p { margin: 2px 0; color: var(--muted); }
#top-classes { font-size: 16px; color: var(--ink); margin: 6px 0; }
#top-classes b { font-size: 18px; }
#top-classes .alt { color: var(--muted); }
nav#layer-index { display: flex; flex-wrap: wrap; gap: 4px; margin: 6px 0 2px; align-items: center; }
nav#layer-index a {
  font-size: 12px; padding: 1px 7px; border: 1px solid var(--line); border-radius: 10px;
  text-decoration: none; color: var(--accent); background: #f8fafc;
}
nav#layer-index a.nested { border-style: dashed; }
nav#layer-index button, .controls button, .anim button {
  font-size: 12px; padding: 2px 8px; border: 1px solid var(--line); border-radius: 5px; background: #fff;
  cursor: pointer;
}
.controls { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; font-size: 13px; margin: 4px 0; }
.wrap { display: flex; gap: 18px; padding: 14px 22px; align-items: flex-start; }
main { flex: 1 1 0; min-width: 0; }
aside {
  flex: 0 0 40%; max-width: 600px; position: sticky; top: 10px; max-height: calc(100vh - 20px);
  overflow: auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px;
}
section.card {
  background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px;
  margin-bottom: 12px;
}
section.card.nested { margin-left: 26px; border-left: 4px solid #c9d6e8; }
div.block { border: 1px dashed #9fb3c8; border-radius: 10px; padding: 6px 8px 0; margin-bottom: 12px;
  background: #fbfcfe; }
.block-head, .branch-head { color: var(--muted); font-size: 13px; margin: 2px 2px 6px; }
.branch-head { font-weight: 600; color: var(--ink); }
.branches { display: flex; gap: 10px; align-items: flex-start; }
.branch { flex: 1 1 0; min-width: 0; overflow-x: auto; border-top: 3px solid #c9d6e8; padding-top: 2px; }
.branch.identity { flex: 0 0 170px; border-top-style: dashed; }
.branch section.card.nested { margin-left: 0; }
.card h2 { font-size: 16px; margin: 2px 0 4px; display: inline; }
.card h2 .idx { color: var(--accent); }
.card > details > summary { cursor: pointer; list-style-position: outside; margin: 2px 0; }
.meta { color: var(--muted); font-size: 13px; margin: 2px 0; }
.meta b { color: var(--ink); font-weight: 600; }
pre {
  background: #f3f5f7; border-radius: 6px; padding: 6px 8px; font-size: 12px; overflow-x: auto; margin: 6px 0;
}
.maps { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
figure { margin: 0; text-align: center; font-size: 11px; color: var(--muted); }
figure img, figure canvas { display: block; image-rendering: pixelated; outline: 1px solid var(--line); }
img.fmap, img.fvec, img.ftile { cursor: crosshair; }
img.fvec, .gmaps canvas { max-width: 100%; }
img.fmap:hover, img.fvec:hover, img.ftile:hover { outline: 2px solid var(--accent); }
.filters { display: grid; gap: 3px; margin-top: 4px; align-items: center; }
.filters span { font-size: 10px; color: var(--muted); text-align: right; padding-right: 3px; }
.filters img { image-rendering: pixelated; outline: 1px solid var(--line); display: block; }
details > summary { cursor: pointer; color: var(--accent); font-size: 13px; margin-top: 4px; }
.card > details > summary { color: var(--ink); font-size: 14px; }
.note {
  background: #fff7e0; border: 1px solid #f0d68a; border-radius: 6px; padding: 6px 10px; margin: 6px 0;
  font-size: 13px;
}
.rf-host { position: relative; display: inline-block; width: max-content; }
.rf-box, .win-box, .rf-pix, .tile-box { position: absolute; pointer-events: none; display: none; }
.rf-box { border: 2px solid var(--rf); background: rgba(232, 89, 12, 0.15); }
.win-box { border: 2px solid var(--win); background: rgba(25, 113, 194, 0.18); }
.tile-box { border: 1px dashed #222; box-shadow: 0 0 0 1px rgba(255, 255, 255, 0.6); }
.rf-pix { border: 2px solid var(--pix); }
table.grid {
  border-collapse: collapse; margin: 2px 8px 6px 0; font: 11px/1.2 ui-monospace, Menlo, Consolas, monospace;
}
table.grid td { border: 1px solid var(--line); padding: 2px 4px; text-align: right; min-width: 2.6em; }
table.grid td.pad { background: #eceff3; color: #8a949e; }
table.grid td.hit { background: #ffe066; font-weight: 700; }
table.grid td.tie { background: #fff3bf; }
table.grid td.off { color: #adb5bd; }
table.grid caption { font-size: 11px; color: var(--muted); text-align: left; }
table.grid th { font-weight: 400; color: var(--muted); padding: 1px 4px; font-size: 10px; }
.grids { display: flex; flex-wrap: wrap; align-items: flex-start; }
.calc { font: 12px/1.5 ui-monospace, Menlo, Consolas, monospace; word-break: break-word; margin: 3px 0; }
.ok { color: #2b8a3e; font-weight: 600; }
.sent-to { margin: 8px 0; padding: 2px 0 2px 8px; border-left: 3px solid #c9d6e8; }
.sent-to > p { margin: 3px 0; }
.bad { color: #c92a2a; font-weight: 600; }
.bars { margin-top: 4px; }
.bar { display: flex; align-items: center; gap: 8px; margin: 2px 0; font-size: 13px; cursor: pointer; }
.bar .lab { width: 130px; text-align: right; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar .track { flex: 1; background: #edf0f3; border-radius: 3px; height: 14px; }
.bar .fill { background: #7aa6d8; height: 14px; border-radius: 3px; }
.bar.top .fill { background: var(--accent); }
.bar.label .lab { font-weight: 700; }
.bar .num { width: 70px; font-variant-numeric: tabular-nums; }
#hover {
  position: fixed; pointer-events: none; background: #1b1f24; color: #fff; font-size: 12px;
  padding: 2px 6px; border-radius: 4px; display: none; z-index: 10;
}
.gmaps { display: none; margin-top: 6px; border-top: 1px dashed var(--line); padding-top: 4px; }
body.grads .gmaps { display: block; }
.gmaps .maps { margin-top: 2px; }
.anim { display: flex; gap: 6px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
.anim span { font-size: 12px; color: var(--muted); }
#detail h3 { font-size: 15px; margin: 4px 0; }
#detail h4 { font-size: 13px; margin: 10px 0 2px; color: var(--accent); }
.pg-inputs { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0; }
.pg-inputs label { font-size: 13px; }
.pg-inputs input { width: 58px; }
.pg-row { display: flex; gap: 1px; margin: 1px 0; align-items: center; }
.pg-row .cell {
  width: 16px; height: 16px; font-size: 9px; text-align: center; line-height: 16px; background: #f1f3f5;
  color: #868e96;
}
.pg-row .cell.real { background: #dde5ee; color: #333; }
.pg-row .cell.tap { background: #0b62c4; color: #fff; }
.pg-row .cell.left { background: #ffd8a8; }
.pg-row .lbl { width: 54px; font-size: 11px; color: var(--muted); text-align: right; padding-right: 4px; }
.muted { color: var(--muted); }
.live { display: flex; gap: 18px; flex-wrap: wrap; align-items: flex-start; padding: 12px 22px 0; }
.live .pad-box { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
#draw { background: #000; touch-action: none; cursor: crosshair; display: block; border-radius: 4px; }
#drop { border: 2px dashed var(--line); border-radius: 8px; padding: 14px; text-align: center;
        color: var(--muted); min-width: 220px; }
#drop.over { border-color: var(--accent); color: var(--accent); }
#message { min-height: 1.5em; font-size: 14px; }
#message.error { color: #c92a2a; font-weight: 600; }
#live-status { font-size: 12px; color: var(--muted); }
"""
