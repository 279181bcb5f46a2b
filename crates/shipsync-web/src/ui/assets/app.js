// shipsync operator UI: copy buttons and the schedule dialog. No framework.
document.addEventListener("click", function (e) {
  var t = e.target.closest("[data-copy]");
  if (t) {
    var input = document.getElementById(t.getAttribute("data-copy"));
    input.select();
    var done = function () { t.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else { document.execCommand("copy"); done(); }
    return;
  }
  t = e.target.closest("[data-open]");
  if (t) { document.getElementById(t.getAttribute("data-open")).showModal(); return; }
  t = e.target.closest("[data-close]");
  if (t) { t.closest("dialog").close(); return; }
  t = e.target.closest("[data-delete-rule]");
  if (t) { t.closest("tr").remove(); return; }
  t = e.target.closest("[data-add-schedule]");
  if (t) {
    var box = document.getElementById(t.getAttribute("data-add-schedule"));
    box.hidden = false;
    box.querySelectorAll("input,select").forEach(function (i) { i.disabled = false; });
    showKind(box);
    return;
  }
});
function showKind(box) {
  var kind = box.querySelector("select[name=new_kind]").value;
  box.querySelectorAll("[data-kind]").forEach(function (el) {
    el.hidden = el.getAttribute("data-kind").split(" ").indexOf(kind) < 0;
  });
}
document.addEventListener("change", function (e) {
  // The select has an id itself: look for the fieldset around it.
  if (e.target.name === "new_kind") { showKind(e.target.closest("fieldset")); }
  // "Select all" checks every checkbox of its form with that name.
  var all = e.target.getAttribute("data-select-all");
  if (all) {
    e.target.form.querySelectorAll("input[type=checkbox][name=" + all + "]").forEach(function (c) { c.checked = e.target.checked; });
  }
});
