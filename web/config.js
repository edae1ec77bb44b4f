// Where the page finds the three functions. `make demo` serves them on these ports;
// for a deployment, overwrite this file with the function URLs (see README, "Web page").
window.ESTATE_CONFIG = {
  predict: "http://localhost:8080",
  explain: "http://localhost:8081",
  chat: "http://localhost:8082",
};
