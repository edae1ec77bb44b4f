// Where the page finds the functions. `make demo` serves them on these ports;
// for a deployment, overwrite this file with the gateway's URLs and the web API key
// (apiKey: `terraform output -raw web_api_key`; see infra/README.md, "Publishing the web page").
window.ESTATE_CONFIG = {
  predict: "http://localhost:8080",
  explain: "http://localhost:8081",
  chat: "http://localhost:8082",
  analyze: "http://localhost:8084",
};
