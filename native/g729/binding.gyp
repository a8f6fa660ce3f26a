{
  "targets": [
    {
      "target_name": "g729",
      "sources": ["g729.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-l:libbcg729.a"]
    }
  ]
}
