// PostGraphile 5 as the benchmark's peer: Amber preset, simplified names, connection-filter with
// relation filters. Production-like: no watch, no GraphiQL, no explain. DATABASE_URL and PORT from
// the environment; started by bench/postgraphile_peer.py through the postgraphile CLI.
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { jsonPgSmartTags } from "postgraphile/utils";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";

// PostGraphile filters only on indexed columns; "active care relation" needs the unindexed
// care_relation.period_start and period_end, so those two (and only those) are opted in.
const ActiveCareRelationFilterPlugin = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      care_relation: {
        attribute: {
          period_start: { tags: { behavior: "+filterBy" } },
          period_end: { tags: { behavior: "+filterBy" } },
        },
      },
    },
  },
});

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset, PostGraphileConnectionFilterPreset],
  plugins: [ActiveCareRelationFilterPlugin],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: 10 },
    }),
  ],
  schema: {
    connectionFilterRelations: true,
  },
  grafast: { explain: false },
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PORT ?? 5678),
    graphqlPath: "/graphql",
    graphiql: false,
    watch: false,
  },
};

export default preset;
