// GraphiQL against this gateway: the same origin for queries and for subscriptions (graphql-transport-ws).
// The token goes in the Headers tab: {"Authorization": "Bearer <akson token --persona gp>"}.
(function () {
  "use strict";
  var endpoint = window.location.origin + window.location.pathname;
  var socket = endpoint.replace(/^http/, "ws");
  var fetcher = GraphiQL.createFetcher({ url: endpoint, subscriptionUrl: socket });
  var explorer = GraphiQLPluginExplorer.explorerPlugin();
  var example = [
    "# Akson Gateway. Put a token in Headers below: {\"Authorization\": \"Bearer <token>\"}",
    "# (make a demo token with `akson token --persona homecare-nurse`).",
    "{",
    "  patients(first: 5) {",
    "    totalCount",
    "    edges { node { id name { family given } birthDate } }",
    "  }",
    "}",
    "",
  ].join("\n");

  function Page() {
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultQuery: example,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(Page));
})();
