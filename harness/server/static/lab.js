// The session page follows its run live: the API's server-sent events say when the run changes, and the runs
// table is fetched again; when the run ends, the page reloads to show its cases. Without scripts, reload by hand.
(function () {
  function follow() {
    var section = document.getElementById("runs");
    if (!section || !section.dataset.run || !window.EventSource) return;
    var events = new EventSource("/api/v1/runs/" + section.dataset.run + "/events");
    events.addEventListener("run", function () {
      fetch("/sessions/" + section.dataset.session + "/progress", {credentials: "same-origin"})
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("runs");
          if (fresh) section.innerHTML = fresh.innerHTML;
        });
    });
    events.addEventListener("end", function () { events.close(); window.location.reload(); });
    events.onerror = function () { events.close(); };
  }
  document.addEventListener("DOMContentLoaded", follow);
})();
