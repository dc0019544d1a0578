"""GraphQL types and resolvers: thin, they ask the store and never touch SQL, Cerbos or audit."""
