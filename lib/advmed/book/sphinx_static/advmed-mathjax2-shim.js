// The ipywidgets embed manager typesets widget labels with the MathJax 2 API
// (MathJax.Hub.Queue) whenever window.MathJax exists; the book serves MathJax 3, which
// has no Hub, so those calls threw "reading 'Queue'" and stopped widget rendering.
// Give every MathJax object assigned to the page a Hub.Queue that typesets with MathJax 3.
(function () {
  function withHub(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          if (window.MathJax && window.MathJax.typesetPromise) {
            window.MathJax.typesetPromise(el ? [el] : undefined).catch(function () {});
          }
        }
      };
    }
    return mj;
  }
  var current = withHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = withHub(value); }
  });
})();
