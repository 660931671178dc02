// Live updates: the server sends `change` when the registry changed; every element with
// hx-trigger="opus:change from:body" then re-fetches its fragment. body[data-live] says
// whether the stream is open ("on") or reconnecting ("off").
(function () {
  "use strict";
  function start() {
    var source = new EventSource("/api/v1/stream");
    var mark = document.getElementById("live-state");
    function state(on) {
      document.body.dataset.live = on ? "on" : "off";
      if (mark) { mark.className = on ? "live on" : "live"; }
    }
    source.addEventListener("hello", function () { state(true); });
    source.addEventListener("change", function (event) {
      document.body.dataset.version = event.data;
      htmx.trigger(document.body, "opus:change");
    });
    source.onerror = function () { state(false); };
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
