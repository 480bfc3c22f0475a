package portal

// pageTemplate is the one page template: semantic HTML, one column that fits a phone,
// system fonts, no third-party assets, colours with WCAG AA contrast. The inline style
// and script carry the response's CSP nonce.
const pageTemplate = `<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="{{.Referrer}}">
<meta name="robots" content="noindex, nofollow">
{{- if .Poll}}
<noscript><meta http-equiv="refresh" content="{{.RefreshSecs}}"></noscript>
{{- end}}
<title>{{if eq .Kind "invalid"}}{{.T.InvalidTitle}}{{else if eq .Kind "expired"}}{{.T.ExpiredTitle}}{{else if eq .Kind "notfound"}}{{.T.NotFoundTitle}}{{else if eq .Kind "forbidden"}}{{.T.ForbiddenTitle}}{{else if eq .Kind "wipe-confirm"}}{{.T.ConfirmTitle}}{{else if eq .Kind "wipe-done"}}{{.T.DoneTitle}}{{else if eq .Kind "wipe-refused"}}{{.T.RefusedTitle}}{{else if eq .Kind "wipe-failed"}}{{.T.FailedTitle}}{{else}}{{.T.Title}}{{end}} – {{.Organization}}</title>
<style nonce="{{.Nonce}}">
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font:1.0625rem/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1a1a1a;background:#f4f5f7}
header{background:#123a6b;color:#fff;padding:.75rem 1rem;font-weight:600}
main{max-width:40rem;margin:0 auto;padding:1rem}
.card{background:#fff;border-radius:.75rem;padding:1.25rem;margin:0 0 1rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.375rem;line-height:1.3;margin:0 0 .75rem}
h2{font-size:1.125rem;margin:0 0 .5rem}
p{margin:0 0 .75rem}
ol{margin:0;padding-left:1.4rem}
li{margin:0 0 .6rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.35rem 1rem;margin:0}
dt{color:#4a4a4a}
dd{margin:0;overflow-wrap:anywhere}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-size:.9375rem;font-weight:600}
.s-released{background:#d7f5e1;color:#0b5a2a}
.s-not_compliant,.s-not_enrolled,.s-pending_approval{background:#fff1c7;color:#6b4600}
.s-blocked,.s-unavailable{background:#fde2e1;color:#8a1c14}
.ok{border-top:.35rem solid #1e8e3e}
.warn{border-top:.35rem solid #b06000}
.bad{border-top:.35rem solid #c5221f}
a{color:#0b57d0}
a.button{display:inline-block;padding:.7rem 1.1rem;background:#0b57d0;color:#fff;border-radius:.5rem;text-decoration:none;font-weight:600}
a:focus,a.button:focus{outline:3px solid #f9ab00;outline-offset:2px}
.muted{color:#4a4a4a;font-size:.9375rem}
dl.one{margin:0 0 .75rem}
.lost{margin-top:2rem;border:2px dashed #c5221f;box-shadow:none}
form{margin:0}
button{font:inherit;font-weight:600;padding:.7rem 1.1rem;border-radius:.5rem;border:2px solid #b3261e;background:#fff;color:#b3261e;cursor:pointer;max-width:100%}
button.confirm{background:#b3261e;color:#fff}
button:focus{outline:3px solid #f9ab00;outline-offset:2px}
.actions{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;margin-top:1rem}
</style>
</head>
<body>
<header>{{.Organization}}</header>
<main id="main">
{{- if eq .Kind "invalid"}}
<section class="card bad" aria-labelledby="h">
<h1 id="h">{{.T.InvalidTitle}}</h1>
<p>{{.T.InvalidP}}</p>
</section>
{{- else if eq .Kind "expired"}}
<section class="card warn" aria-labelledby="h">
<h1 id="h">{{.T.ExpiredTitle}}</h1>
<p>{{.T.ExpiredP}}</p>
</section>
{{- else if eq .Kind "notfound"}}
<section class="card bad" aria-labelledby="h">
<h1 id="h">{{.T.NotFoundTitle}}</h1>
<p>{{.T.NotFoundP}}</p>
</section>
{{- else if eq .Kind "forbidden"}}
<section class="card bad" aria-labelledby="h">
<h1 id="h">{{.T.ForbiddenTitle}}</h1>
<p>{{.T.ForbiddenP}}</p>
</section>
{{- else if eq .Kind "wipe-confirm"}}
<section id="confirm" class="card bad" aria-labelledby="h">
<h1 id="h">{{.T.ConfirmTitle}}</h1>
<dl class="one"><dt>{{.T.Device}}</dt><dd>{{.DeviceName}}</dd></dl>
<p>{{.T.ConfirmP}}</p>
<p>{{.T.ConfirmKeeps}}</p>
<p>{{.T.ConfirmFinal}}</p>
<form method="post" action="{{.WipeURL}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="confirm" value="yes">
<div class="actions">
<button type="submit" class="confirm">{{.T.ConfirmButton}}</button>
<a href="{{.PageURL}}">{{.T.Cancel}}</a>
</div>
</form>
</section>
{{- else if eq .Kind "wipe-done"}}
<section id="wiped" class="card ok" aria-labelledby="h">
<h1 id="h">{{.T.DoneTitle}}</h1>
<dl class="one"><dt>{{.T.Device}}</dt><dd>{{.DeviceName}}</dd></dl>
<p>{{.T.DoneP}}</p>
<p>{{.T.DoneKeeps}}</p>
<p>{{.T.DoneNext}}</p>
</section>
{{- else if eq .Kind "wipe-refused"}}
<section class="card warn" aria-labelledby="h">
<h1 id="h">{{.T.RefusedTitle}}</h1>
<p>{{.T.RefusedP}}</p>
</section>
{{- else if eq .Kind "wipe-failed"}}
<section class="card bad" aria-labelledby="h">
<h1 id="h">{{.T.FailedTitle}}</h1>
<p>{{.T.FailedP}}</p>
</section>
{{- else}}
<section id="status" class="card {{if eq .State "released"}}ok{{else if or (eq .State "blocked") (eq .State "unavailable")}}bad{{else}}warn{{end}}" aria-labelledby="h" aria-live="polite" data-state="{{.State}}" data-v="{{.Version}}"{{if .Poll}} data-poll="{{.PollURL}}" data-interval="{{.PollMillis}}"{{end}}>
{{- if eq .State "released"}}
<h1 id="h">{{.T.ReleasedH}}</h1>
<p>{{.T.ReleasedP}}</p>
{{- else if eq .State "not_compliant"}}
<h1 id="h">{{.T.NotCompliantH}}</h1>
<p>{{.T.NotCompliantP}}</p>
<h2>{{.T.FixH}}</h2>
<ol id="fixes">
{{- range .Fixes}}
<li>{{.}}</li>
{{- end}}
</ol>
{{- else if eq .State "not_enrolled"}}
<h1 id="h">{{.T.NotEnrolledH}}</h1>
<p>{{.T.NotEnrolledP}}</p>
{{- if .EnrollURL}}
<p><a class="button" href="{{.EnrollURL}}">{{.T.EnrollLink}}</a></p>
{{- else}}
<p>{{.T.EnrollAsk}}</p>
{{- end}}
{{- else if eq .State "pending_approval"}}
<h1 id="h">{{.T.PendingH}}</h1>
<p>{{.T.PendingP}}</p>
{{- else if eq .State "blocked"}}
<h1 id="h">{{.T.BlockedH}}</h1>
<p>{{.T.BlockedP}}</p>
{{- else}}
<h1 id="h">{{.T.UnavailableH}}</h1>
<p>{{.T.UnavailableP}}</p>
{{- end}}
{{- if .Poll}}
<p class="muted">{{.T.AutoUpdate}}</p>
{{- end}}
</section>
<section class="card" aria-labelledby="dh">
<h2 id="dh">{{.T.Device}}</h2>
<dl>
<dt>{{.T.Name}}</dt><dd>{{.DeviceName}}</dd>
<dt>{{.T.Model}}</dt><dd>{{if .Model}}{{.Model}}{{else}}{{.T.Unknown}}{{end}}</dd>
<dt>{{.T.OS}}</dt><dd>{{if .OS}}{{.OS}}{{else}}{{.T.Unknown}}{{end}}</dd>
{{- if .DeviceType}}
<dt>{{.T.Type}}</dt><dd>{{.DeviceType}}</dd>
{{- end}}
<dt>{{.T.State}}</dt><dd><span class="badge s-{{.State}}">{{.StateName}}</span></dd>
</dl>
</section>
{{- if .ShowWipe}}
<section id="lost" class="card lost" aria-labelledby="lh">
<h2 id="lh">{{.T.LostH}}</h2>
<p>{{.T.LostP}}</p>
<form method="post" action="{{.WipeURL}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit">{{.T.WipeButton}}</button>
</form>
</section>
{{- end}}
{{- end}}
</main>
{{- if .Poll}}
<script nonce="{{.Nonce}}">
(function () {
  var el = document.getElementById("status");
  var url = el.getAttribute("data-poll"), v = el.getAttribute("data-v");
  var every = parseInt(el.getAttribute("data-interval"), 10) || 5000;
  function tick() {
    fetch(url, {cache: "no-store", credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (j) {
        if (j && j.v && j.v !== v) { location.reload(); return; }
        if (j && !j.v) { location.reload(); return; }
        setTimeout(tick, every);
      })
      .catch(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
</script>
{{- end}}
</body>
</html>
`
