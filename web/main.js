// index.html's start: the token from the URL fragment (#token=...), kept in
// sessionStorage for this tab and removed from the address bar.
import { mount } from './app.js';

const KEY = 'ngx_chat.token';
const m = location.hash.match(/[#&]token=([^&]+)/);
if (m) {
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + location.search);
}

mount(document.getElementById('app'), {
  token: sessionStorage.getItem(KEY),
  onSignOut: () => sessionStorage.removeItem(KEY),
}).then(({ client }) => {
  // a token pasted on the sign-in form is kept for the tab as well
  if (client.token) sessionStorage.setItem(KEY, client.token);
});
